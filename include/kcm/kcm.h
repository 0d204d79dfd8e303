/* kcmrun public C API: native modules and the job API.
 *
 * A native module is one .c file defining `int kcm_open_<name>(lua_State *L)`
 * (pushes the module table, returns 1) plus one line in engine/modules.c.
 * Lua code reaches it as `require "kcm.native.<name>"`.
 *
 * Blocking work (ssh, key generation, HTTPS, local processes) never runs on
 * the main thread: a native function makes its job with kcm_job_new, fills
 * it (raising freely: until submitted the job belongs to a guard on the
 * stack, which frees it) and returns kcm_job_yield(L, job). The job's work()
 * runs on a worker thread and must not touch any lua_State; done() runs
 * later on the main thread, in the calling coroutine, and pushes the results.
 *
 * Out of memory: on the main thread raise "out of memory" (kcm_oom in
 * engine/util.h); in work(), kcm_job_fail(job, "out of memory").
 *
 * A wait is not blocking work: never nanosleep in a job. task.sleep (and
 * task.retry between attempts) parks the coroutine on a timer of the main
 * loop (engine/timers.c), so a thousand waits hold no worker thread.
 */
#ifndef KCM_KCM_H
#define KCM_KCM_H

#include <stddef.h>
#include <stdarg.h>
#include <lua.h>
#include <lauxlib.h>

/* KCM_VERSION comes from CMakeLists.txt's project(VERSION), the one version string. */
#ifndef KCM_VERSION
#error "KCM_VERSION is defined by the build (CMakeLists.txt project VERSION)"
#endif

typedef struct kcm_job kcm_job;

/* Worker thread. Reads its copied inputs, writes outputs into the job.
 * Report failure with kcm_job_fail(); never raise, never touch Lua. */
typedef void (*kcm_job_work_fn)(kcm_job *job);
/* Main thread, only when work() did not fail. Push results, return how many.
 * Must not raise (the job is freed after it returns). */
typedef int (*kcm_job_done_fn)(lua_State *L, kcm_job *job);
/* Releases everything the job owns, including the job itself. Always called once. */
typedef void (*kcm_job_free_fn)(kcm_job *job);

struct kcm_job {
    kcm_job_work_fn work;
    kcm_job_done_fn done;
    kcm_job_free_fn free;
    /* Jobs with the same non-NULL pin never run at the same time (one
     * libssh session = one thread at a time). */
    const void *pin;
    /* --- owned by the runtime --- */
    char *error;          /* set by kcm_job_fail */
    const char *kind;     /* set by kcm_job_fail_kind: a static string */
    int co_ref;           /* registry ref of the waiting coroutine */
    kcm_job *next;
    void *guard;          /* kcm_job_new's guard until kcm_job_yield takes the job */
};

/* Main thread: allocates a zeroed job of `size` bytes (a struct whose first
 * member is a kcm_job) and pushes a to-be-closed guard that owns it: a raise
 * while the native fills the job (a bad option, out of memory) frees it with
 * free_fn, which must therefore accept a partly filled job. kcm_job_yield
 * takes the job from the guard. Leave the guard's slot on the stack (pop only
 * what you push above it). Raises "out of memory". */
void *kcm_job_new(lua_State *L, size_t size, kcm_job_work_fn work,
                  kcm_job_done_fn done, kcm_job_free_fn free_fn);

/* Runs job->work (of a job from kcm_job_new) on the worker pool and yields
 * the calling coroutine; when the job is done the coroutine resumes with what
 * job->done pushed, or, when work() failed, with `nil, message, kind` (an
 * operational failure is a value, never a raise: the natives' one convention;
 * misuse raises before the job exists). Outside a scheduled coroutine (not
 * yieldable) the work runs inline. Use as `return kcm_job_yield(L, job);` */
int kcm_job_yield(lua_State *L, kcm_job *job);

/* From work(): mark the job failed with a formatted message (first call wins);
 * its kind is "error". */
void kcm_job_fail(kcm_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with a kind callers branch on instead of parsing the message:
 * "unreachable" (the link is gone), "denied", "noent", "timeout", "tls",
 * "hostkey", "auth", "error". `kind` must be a static string. */
void kcm_job_fail_kind(kcm_job *job, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


/* Userdata helper: allocate a userdata of `size` bytes with metatable `tname`
 * (created on first use from `methods`, with __index = methods, and `gc` as
 * __gc and __close when non-NULL). */
void *kcm_newudata(lua_State *L, size_t size, const char *tname,
                   const luaL_Reg *methods, lua_CFunction gc);

/* Deterministic order for table keys (templates' `for k, v`, YAML output):
 * numbers ascending, then strings bytewise, then anything else (equal).
 * kcm_key_rank: 0 number, 1 string, 2 other. */
int kcm_key_rank(lua_State *L, int idx);
int kcm_key_less(lua_State *L, int a, int b);

/* Secure wipe for buffers that held key material. */
void kcm_memzero(void *p, size_t n);

#endif
