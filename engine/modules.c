/* The native module table: a new module is one .c file plus one line here. */
#include "modules.h"

const struct kcm_native_module kcm_native_modules[] = {
    {"runtime",  kcm_open_runtime},
    {"exec",     kcm_open_exec},
    {"fs",       kcm_open_fs},
    {"crypto",   kcm_open_crypto},
    {"template", kcm_open_template},
    {"yaml",     kcm_open_yaml},
    {"ssh",      kcm_open_ssh},
    {"sshconfig", kcm_open_sshconfig},
    {"redact",   kcm_open_redact},
    {"http",     kcm_open_http},
    {"statedir", kcm_open_statedir},
    {NULL, NULL},
};
