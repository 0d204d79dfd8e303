/* fs.write's atomic semantics: the file is replaced by rename (a hard link
 * to the old file keeps the old content, the path gets a new inode), the
 * mode is exact, no temp file is left (also after a failure), unchanged
 * content is a no-op, a mode-only change is a chmod, and failures are the
 * value nil, message, kind. stat(1) is the oracle for inodes and modes. */
#include <sys/stat.h>
#include "cunit.h"

static const char CHUNK[] =
    "local fs = require 'kcm.native.fs'\n"
    "local rt = require 'kcm.native.runtime'\n"
    "local exec = require 'kcm.native.exec'\n"
    "local dir = fs.tempdir()\n"
    "local function sh(cmd) local r = exec.run { argv = { 'sh', '-c', cmd } } assert(r.code == 0, cmd .. ': ' .. r.stderr) return r.stdout end\n"
    "local function stat(p) local ino, mode = sh(\"stat -c '%i %a' '\" .. p .. \"'\"):match('(%d+) (%d+)') return ino, mode end\n"
    "local function listing() return sh(\"ls -A '\" .. dir .. \"'\") end\n"
    "local st = fs.stat(dir)\n"
    "assert(st.type == 'dir' and st.mode & 511 == tonumber('700', 8), 'tempdir is 0700')\n"
    "local p = dir .. '/secret.key'\n"
    "assert(fs.write(p, 'one', { mode = tonumber('600', 8) }) == true, 'new file: changed')\n"
    "assert(fs.read(p) == 'one')\n"
    "local ino1, mode1 = stat(p)\n"
    "assert(mode1 == '600', 'mode ' .. mode1)\n"
    "assert(fs.write(p, 'one', { mode = tonumber('600', 8) }) == false, 'same content and mode: no change')\n"
    "assert(stat(p) == ino1, 'a no-op write does not replace the file')\n"
    /* replace: readers holding the old file (a hard link) keep the old bytes */
    "sh(\"ln '\" .. p .. \"' '\" .. dir .. \"/old-link'\")\n"
    "assert(fs.write(p, 'two two', { mode = tonumber('600', 8) }) == true)\n"
    "local ino2 = stat(p)\n"
    "assert(ino2 ~= ino1, 'replaced by rename: new inode')\n"
    "assert(fs.read(p) == 'two two' and fs.read(dir .. '/old-link') == 'one', 'old inode untouched')\n"
    "assert(listing() == 'old-link\\nsecret.key\\n', 'no temp file left: ' .. listing())\n"
    /* mode only: chmod in place */
    "assert(fs.write(p, 'two two', { mode = '0644' }) == true, 'mode change is a change')\n"
    "local ino3, mode3 = stat(p)\n"
    "assert(ino3 == ino2 and mode3 == '644', 'chmod in place: ' .. mode3)\n"
    /* the umask does not widen or narrow the requested mode */
    "assert(fs.write(dir .. '/wide', 'x', { mode = tonumber('755', 8) }))\n"
    "assert(select(2, stat(dir .. '/wide')) == '755')\n"
    /* empty content is a file too */
    "assert(fs.write(dir .. '/empty', '', { mode = tonumber('600', 8) }) == true and fs.read(dir .. '/empty') == '')\n"
    "assert(fs.write(dir .. '/empty', '', { mode = tonumber('600', 8) }) == false)\n"
    /* mkdir */
    "local deep = dir .. '/a/b/c/f.conf'\n"
    /* an operational failure is a value: nil, message, kind */
    "local ok, err, kind = fs.write(deep, 'x')\n"
    "assert(ok == nil and tostring(err):find(deep, 1, true), 'missing folder: error names the path: ' .. tostring(err))\n"
    "assert(kind == 'noent', 'missing folder: kind ' .. tostring(kind))\n"
    "assert(fs.write(deep, 'x', { mkdir = true }) == true and fs.read(deep) == 'x')\n"
    /* failure: the parent is a file; nothing is left behind */
    "local ok2, err2 = fs.write(p .. '/child', 'x')\n"
    "assert(ok2 == nil and tostring(err2):find('child', 1, true), tostring(err2))\n"
    "assert(fs.read(p) == 'two two')\n"
    /* a directory in the way of the rename: error, no temp file */
    "fs.mkdir(dir .. '/isdir', tonumber('755', 8))\n"
    "local ok3, err3 = fs.write(dir .. '/isdir', 'x')\n"
    "assert(ok3 == nil and err3, 'writing over a directory fails')\n"
    "assert(not listing():find('kcm', 1, true), 'temp file left after a failed rename: ' .. listing())\n"
    /* --check is kcm.target's (engine_check): the primitive itself writes */
    "assert(fs.read(p) == 'two two' and stat(p) == ino2)\n"
    /* read errors name the path */
    "local nothing, why, wkind = fs.read(dir .. '/missing')\n"
    "assert(nothing == nil and why:find('missing', 1, true) and wkind == 'noent')\n"
    "assert(fs.stat(dir .. '/missing') == nil and select('#', fs.stat(dir .. '/missing')) == 1, 'nothing there: nil alone')\n"
    "assert(fs.sha256('abc') == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')\n"
    "assert(fs.remove(p) == true and fs.remove(p) == false)\n"
    "sh(\"rm -rf '\" .. dir .. \"'\")\n";

int main(void)
{
    umask(077);   /* the requested mode must not depend on the umask */
    lua_State *L = kcm_lua_new();
    CHECK(L != NULL);
    cunit_lua(L, "=fs", CHUNK);
    lua_close(L);
    printf("fs: ok\n");
    return 0;
}
