/* libFuzzer harness for the Lua-level parsers (pki CSR / ca-config JSON,
 * inventories, the environment.sh importer, kubeconfig resolve).
 *
 * One source, one executable per driver: KCM_FUZZ_DRIVER names a Lua file
 * (tests/fuzz/<target>.lua) whose chunk returns function(data). The state
 * is the engine's own (kcm_lua_new(): natives, cjson, the built-in library).
 *
 * Findings: crashes and sanitizer reports (the engine is built with
 * -fsanitize=fuzzer-no-link,address,undefined), a Lua panic (an error
 * outside any pcall), and a driver invariant violated (the driver raises
 * {fuzz_invariant = "..."}). Ordinary Lua errors from the code under test
 * are expected outcomes of bad input.
 *
 * libFuzzer cannot see coverage inside Lua code (the VM and cjson are
 * uninstrumented system libraries), so a line hook feeds Lua line-to-line
 * edges into libFuzzer's extra counters. A count hook bounds the
 * instructions per input and a counting allocator bounds the state's memory,
 * so a runaway input is an ordinary error rather than a timeout or OOM kill.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "loader.h"

#ifndef KCM_FUZZ_DRIVER
#error "KCM_FUZZ_DRIVER must name the driver .lua file"
#endif

#define COV_SIZE (1u << 16)
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t lua_cov[COV_SIZE];

#define MEM_LIMIT ((size_t)128 << 20)
#define INSN_BUDGET 200000L     /* per input: real inventories need a few thousand; a 650k-node one is slow, not a bug */
#define HOOK_EVERY 1000

static lua_State *L;
static int driver_ref;
static size_t mem_used;
static long insn_left;
static uintptr_t prev_loc;
static char tmpdir[] = "/tmp/kcm-fuzz-XXXXXX";

static void remove_tmpdir(void)
{
    rmdir(tmpdir);   /* drivers remove their files after each input */
}

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        mem_used -= old;
        return NULL;
    }
    if (nsize > old && mem_used + (nsize - old) > MEM_LIMIT)
        return NULL;   /* Lua collects and retries, then raises "not enough memory" */
    void *p = realloc(ptr, nsize);
    if (p)
        mem_used = mem_used - old + nsize;
    return p;
}

static void hook(lua_State *L, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKCOUNT) {
        insn_left -= HOOK_EVERY;
        if (insn_left < 0) {
            insn_left = INSN_BUDGET;   /* room for the error handling that follows */
            luaL_error(L, "fuzz: instruction budget exhausted");
        }
        return;
    }
    if (ar->event == LUA_HOOKLINE && lua_getinfo(L, "S", ar)) {
        /* A chunk made from the input (the inventory file) is new each time:
         * its lines are noise, not coverage of the code under test. */
        if (ar->source[0] == '@' && strncmp(ar->source + 1, tmpdir, sizeof tmpdir - 1) == 0)
            return;
        /* the chunk's source string lives as long as its prototype */
        uintptr_t loc = ((uintptr_t)ar->source * 31u) ^ (uintptr_t)ar->currentline * 2654435761u;
        lua_cov[(loc ^ (prev_loc >> 1)) % COV_SIZE]++;
        prev_loc = loc;
    }
}

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "Lua panic: %s\n", msg ? msg : "(not a string)");
    abort();
}

/* Errors are tracebacks for the record; invariant violations abort. */
static int on_error(lua_State *L)
{
    if (lua_istable(L, 1) && lua_getfield(L, 1, "fuzz_invariant") == LUA_TSTRING) {
        luaL_traceback(L, L, lua_tostring(L, -1), 1);
        fprintf(stderr, "fuzz invariant violated: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 1);
    return 1;
}

static void setup(void)
{
    L = kcm_lua_new();
    if (!L)
        abort();
    lua_atpanic(L, panic);
    /* blocks already allocated came from realloc too, so the allocator may change */
    mem_used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024;
    lua_setallocf(L, budget_alloc, NULL);

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_tmpdir);
    lua_pushstring(L, tmpdir);
    lua_setglobal(L, "FUZZ_TMPDIR");

    if (luaL_loadfile(L, KCM_FUZZ_DRIVER) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK ||
        !lua_isfunction(L, -1)) {
        fprintf(stderr, "fuzz driver %s: %s\n", KCM_FUZZ_DRIVER, lua_tostring(L, -1));
        abort();
    }
    driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_sethook(L, hook, LUA_MASKLINE | LUA_MASKCOUNT, HOOK_EVERY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        setup();
    insn_left = INSN_BUDGET;
    prev_loc = 0;
    lua_settop(L, 0);
    lua_pushcfunction(L, on_error);
    lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_pcall(L, 1, 0, 1);
    lua_settop(L, 0);
    /* Free what this input allocated before returning: libFuzzer runs a
     * leak check after any input with more mallocs than frees, and a
     * collection is far cheaper than that scan (and keeps it meaningful). */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
