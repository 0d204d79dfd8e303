#!/bin/bash
# kcmrun installed as a user gets it. Usage: test_install.sh CASE
#   tree         cmake --install into a temporary prefix: layout, data found from bin/ (also
#                moved, symlinked, alone), no source/build path in the binary, playbooks by
#                name, completion, man page
#   discovery    the default inventory's order and the line that names it
#   noinventory  no -i, no lab, nothing found: exit 2 listing what was tried
#   deb          cpack -G DEB, dpkg-deb -x into a temporary root, run from there
#   lintian      lintian on that .deb: no E: line
#   lab          the installed kcmrun: lab up, deploy the installed playbook without -i, lab down
#   readme       the README's command from the repo root on the fixture lab, without -i
# Environment: KCMRUN (build-tree binary), KCM_BUILD_DIR, KCM_SOURCE_DIR, KCM_VERSION.
set -e
. "$(dirname "$0")/../lib.sh"
CASE=${1:?case}
: "${KCM_BUILD_DIR:?}" "${KCM_SOURCE_DIR:?}" "${KCM_VERSION:?}"
ENVSH=/opt/k8s/bin/environment.sh

install_to() {
  cmake --install "$KCM_BUILD_DIR" --prefix "$1" >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "cmake --install failed"; }
}
# the procedure's environment.sh comes before the lab in the search order: on a machine that
# has one, the lab's inventory can never be the default, and these cases cannot hold
no_envsh() { [ ! -e "$ENVSH" ] || fail "$ENVSH exists on this machine: it would be the default inventory; move it away to run this test"; }
# no path of the checkout or of the build tree in a binary
no_tree_paths() {
  local hits p asan_modules='^$'
  # AddressSanitizer names each instrumented module by its source path as compiled (GCC 12
  # does not apply -ffile-prefix-map there): in a sanitizer build, and only there, exactly
  # those lines are expected (strings(1) may glue one printable byte before one); any other
  # path still fails.
  if [ "${KCM_SANITIZE:-0}" = 1 ]; then
    asan_modules="^.?($(readlink -f "$KCM_SOURCE_DIR")/engine/[A-Za-z0-9_]+\.c|$(readlink -f "$KCM_BUILD_DIR")/lua_embedded\.c)\$"
  fi
  for p in "$KCM_SOURCE_DIR" "$(readlink -f "$KCM_SOURCE_DIR")" "$KCM_BUILD_DIR" "$(readlink -f "$KCM_BUILD_DIR")"; do
    hits=$(strings -n 4 "$1" | grep -F -- "$p" | grep -Ev -- "$asan_modules" | head -5 || true)
    [ -z "$hits" ] || fail "$1 contains the path $p: $hits"
  done
}
# kcmrun as a user runs it: no data dir or inventory from the test's environment
clean() { env -u KCMRUN_DATADIR -u KCMRUN_INVENTORY XDG_STATE_HOME="$T/state" NO_COLOR=1 "$@"; }

case_tree() {
  local P=$T/prefix f E=$T/empty out
  install_to "$P"
  for f in bin/kcmrun share/kcmrun/lab/kcmlab.sh share/kcmrun/lab/cluster.sh share/kcmrun/lab/node-init.sh \
           share/kcmrun/lab/standins/apiserver.py share/kcmrun/lab/standins/kube-controller-manager \
           share/kcmrun/playbooks/controller-manager.lua share/kcmrun/playbooks/scheduler.lua \
           share/kcmrun/playbooks/templates/kube-controller-manager.service.in \
           share/man/man1/kcmrun.1.gz share/bash-completion/completions/kcmrun; do
    [ -f "$P/$f" ] || fail "cmake --install did not install $f"
  done
  [ -x "$P/share/kcmrun/lab/standins/kube-controller-manager" ] || fail "the stand-in lost its x bit"
  no_tree_paths "$P/bin/kcmrun"
  # one version, from the build, whether main.c or main.lua prints it
  [ "$(clean "$P/bin/kcmrun" --version)" = "kcmrun $KCM_VERSION ($(clean "$P/bin/kcmrun" --version | sed 's/.*(\(.*\))/\1/'))" ] || fail "--version: $(clean "$P/bin/kcmrun" --version)"
  [[ $(clean "$P/bin/kcmrun" --version) == "kcmrun $KCM_VERSION (Lua 5.4."*")" ]] || fail "--version is not $KCM_VERSION"
  [ "$(clean "$P/bin/kcmrun" -q --version)" = "$(clean "$P/bin/kcmrun" --version)" ] || fail "main.lua's version differs from main.c's"

  # data found from bin/, from an empty folder; the installed playbook by name
  mkdir -p "$E" && cd "$E"
  run clean "$P/bin/kcmrun" --list-playbooks
  expect_rc 0 --list-playbooks
  expect_out "^$(readlink -f "$P")/share/kcmrun/playbooks/\$"; expect_out "^  controller-manager\$"; expect_out "^  scheduler\$"
  run clean "$P/bin/kcmrun" --list-steps controller-manager
  expect_rc 0 "--list-steps by name"
  expect_out "^unit +masters +.*/share/kcmrun/playbooks/controller-manager.lua:"   # short_src may elide the front
  # ./playbooks/NAME.lua comes first
  mkdir -p playbooks && echo 'print("the local copy")' > playbooks/controller-manager.lua
  run clean "$P/bin/kcmrun" controller-manager
  expect_rc 0 "local playbook by name"; expect_out "^the local copy\$"
  run clean "$P/bin/kcmrun" --list-playbooks
  expect_out "^$E/playbooks/\$"
  run clean "$P/bin/kcmrun" nosuch
  expect_rc 2 "unknown playbook name"
  expect_err "no playbook 'nosuch': tried ./nosuch, ./playbooks/nosuch.lua, $(readlink -f "$P")/share/kcmrun/playbooks/nosuch.lua"
  rm -rf playbooks

  # moved, reached through a symlink: still found relative to the real binary
  mv "$P" "$T/moved"
  mkdir -p "$T/links" && ln -s "$T/moved/bin/kcmrun" "$T/links/kcmrun"
  run clean "$T/links/kcmrun" --list-playbooks
  expect_out "^$(readlink -f "$T/moved")/share/kcmrun/playbooks/\$"
  run clean env KCMRUN_LAB_DIR="$T/nolab" "$T/links/kcmrun" lab status
  expect_rc 3 "lab status of the moved install"; expect_out "no lab in $T/nolab"
  # alone, without share/: a clear error, and KCMRUN_DATADIR overrides
  mkdir -p "$T/alone" && cp "$T/moved/bin/kcmrun" "$T/alone/"
  run clean "$T/alone/kcmrun" lab status
  expect_rc 2 "lab without data"; expect_err "cannot find the lab: .*KCMRUN_DATADIR"
  run clean env KCMRUN_DATADIR="$T/moved/share/kcmrun" KCMRUN_LAB_DIR="$T/nolab" "$T/alone/kcmrun" lab status
  expect_rc 3 "lab status with KCMRUN_DATADIR"; expect_out "no lab in $T/nolab"
  # the build tree's binary finds the source tree (the marker file next to it)
  run clean "$KCMRUN" --list-playbooks
  expect_out "^$(readlink -f "$KCM_SOURCE_DIR")/playbooks/\$"

  # bash completion: subcommand, lab verbs, playbook names (from --list-playbooks)
  out=$(PATH="$T/moved/bin:$PATH" bash -c '. "$1"; COMP_WORDS=(kcmrun la); COMP_CWORD=1; _kcmrun; echo "${COMPREPLY[*]}"
    COMP_WORDS=(kcmrun contr); COMP_CWORD=1; _kcmrun; echo "${COMPREPLY[*]}"
    COMP_WORDS=(kcmrun lab st); COMP_CWORD=2; _kcmrun; echo "${COMPREPLY[*]}"
    COMP_WORDS=(kcmrun --list-p); COMP_CWORD=1; _kcmrun; echo "${COMPREPLY[*]}"' _ "$T/moved/share/bash-completion/completions/kcmrun")
  [ "$out" = "$(printf 'lab\ncontroller-manager\nstatus stop start\n--list-playbooks')" ] || fail "completion gave: $out"
  # ad-hoc subcommands, and node and group names from the inventory (-i honoured; nothing connects)
  printf 'return { nodes = { { name = "web1", host = "127.0.0.1" }, { name = "web2", host = "127.0.0.1" } }, groups = { webs = { "web1", "web2" } } }\n' > "$T/cinv.lua"
  out=$(PATH="$T/moved/bin:$PATH" bash -c '. "$1"; COMP_WORDS=(kcmrun ru); COMP_CWORD=1; _kcmrun; echo "${COMPREPLY[*]}"
    COMP_WORDS=(kcmrun -i "$2" run we); COMP_CWORD=4; _kcmrun; echo "${COMPREPLY[*]}"
    COMP_WORDS=(kcmrun -i "$2" --limit we); COMP_CWORD=4; _kcmrun; echo "${COMPREPLY[*]}"
    COMP_WORDS=(kcmrun -i "$2" facts all --j); COMP_CWORD=5; _kcmrun; echo "${COMPREPLY[*]}"' _ "$T/moved/share/bash-completion/completions/kcmrun" "$T/cinv.lua")
  [ "$out" = "$(printf 'run\nweb1 web2 webs\nweb1 web2 webs\n--json')" ] || fail "ad-hoc completion gave: $out"
  # the man page: gzipped troff, and it documents every long option --help lists
  gzip -t "$T/moved/share/man/man1/kcmrun.1.gz" || fail "man page is not gzip"
  zcat "$T/moved/share/man/man1/kcmrun.1.gz" | sed 's/\\-/-/g' > "$T/man.txt"
  grep -q "^\.TH KCMRUN 1 .*\"kcmrun $KCM_VERSION\"" "$T/man.txt" || fail "man page has no .TH KCMRUN 1 ... kcmrun $KCM_VERSION: $(head -1 "$T/man.txt")"
  for f in $(clean "$T/moved/bin/kcmrun" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -q -- "$f" "$T/man.txt" || fail "kcmrun(1) does not document $f"
  done
  pass "installed layout; data found from the (moved, symlinked) binary, KCMRUN_DATADIR overrides, build tree via its marker; no tree path in the binary; playbooks by name; completion; man page"
}

# A playbook on hosts 'masters' that says which inventory it got; inventories with no nodes,
# so nothing connects anywhere.
inv() { printf 'return { vars = { which = "%s" }, nodes = {}, groups = { masters = {} } }\n' "$2" > "$1"; }
case_discovery() {
  local E=$T/cwd
  no_envsh
  mkdir -p "$E" "$T/nolab" && cd "$E"
  cat > "$T/which.lua" <<'LUA'
local kcm = require "kcm"
local play = kcm.playbook { name = "which", hosts = "masters" }
play:step("say", { once = true }, function(ctx) print("which=" .. tostring(ctx.vars.which)) end)
play:step("nodes", function(node) end)
return play
LUA
  inv "$T/cli.lua" cli; inv "$T/env.lua" env; inv "$E/inventory.lua" cwd
  export KCMRUN_LAB_DIR=$T/nolab
  run clean env KCMRUN_INVENTORY="$T/env.lua" "$KCMRUN" -i "$T/cli.lua" "$T/which.lua"
  expect_rc 0 "-i"; expect_out "which=cli"
  [ "$(head -1 "$T/out")" = "inventory: $T/cli.lua (-i)" ] || fail "line 1: $(head -1 "$T/out")"
  # ./inventory.lua matches too: the line says which one won, why, and what else was found
  run clean env KCMRUN_INVENTORY="$T/env.lua" "$KCMRUN" "$T/which.lua"
  expect_rc 0 "KCMRUN_INVENTORY"; expect_out "which=env"
  # (labs up on this machine, other tests', may be named after it)
  case "$(head -1 "$T/out")" in
    "inventory: $T/env.lua (\$KCMRUN_INVENTORY; also found: $(readlink -f "$E")/inventory.lua (./inventory.lua in the current folder); "*"picked as the first of -i, \$KCMRUN_INVENTORY, ./inventory.lua, environment.sh, the lab; -i picks another)") ;;
    *) fail "line 1: $(head -1 "$T/out")" ;;
  esac
  run clean "$KCMRUN" "$T/which.lua"
  expect_rc 0 "./inventory.lua"; expect_out "which=cwd"
  case "$(head -1 "$T/out")" in
    "inventory: $(readlink -f "$E")/inventory.lua (./inventory.lua in the current folder"*) ;;
    *) fail "line 1: $(head -1 "$T/out")" ;;
  esac
  # -q: still the line (a run never acts on a cluster it did not name), the same inventory
  run clean "$KCMRUN" -q "$T/which.lua"
  expect_rc 0 "-q"; grep -q "^inventory: $(readlink -f "$E")/inventory.lua " "$T/out" || fail "-q did not print the inventory line"
  # a lab whose state survived it (a reboot): not a running lab
  rm "$E/inventory.lua"
  printf 'LAB_NAME=zq9stal\nLAB_NODES=3\n' > "$T/nolab/lab.state"; inv "$T/nolab/inventory.lua" stale
  run clean "$KCMRUN" "$T/which.lua"
  expect_rc 2 "stale lab"; expect_err "lab zq9stal in $T/nolab is not running"
  # steps that all run once need no inventory
  printf 'local p = require("kcm").playbook { name = "local" }\np:step("x", { once = true }, function() print("ran once") end)\nreturn p\n' > "$T/once.lua"
  run clean "$KCMRUN" "$T/once.lua"
  expect_rc 0 "once-only playbook"; expect_out "^ran once"; ! grep -q '^inventory:' "$T/out" || fail "once-only playbook named an inventory"
  pass "-i > \$KCMRUN_INVENTORY > ./inventory.lua > (environment.sh) > the running lab, named on line 1; a stale lab is not running; once-only playbooks need none"
}

case_noinventory() {
  local E=$T/empty
  no_envsh
  mkdir -p "$E" "$T/nolab" && cd "$E"
  run clean env KCMRUN_LAB_DIR="$T/nolab" "$KCMRUN" "$KCM_SOURCE_DIR/playbooks/controller-manager.lua"
  expect_rc 2 "no inventory"
  expect_err "no inventory for .*controller-manager.lua \(its steps run on hosts 'masters'\); tried, in order:"
  expect_err "^  -i FILE +not given"
  expect_err "^  \\\$KCMRUN_INVENTORY +not set"
  expect_err "^  \./inventory\.lua +not found in $E"
  expect_err "^  $ENVSH +not found"
  expect_err "^  $T/nolab/inventory\.lua +no lab is up in $T/nolab"
  expect_err "kcmrun lab up"; expect_err "-i FILE"
  [ ! -s "$T/out" ] || { cat "$T/out"; fail "output on stdout before the error"; }
  pass "nothing found: exit 2, the five places tried, how to make one"
}

# cpack -G DEB into $T/pkg; sets deb
make_deb() {
  local D=$T/pkg
  (cd "$T" && cpack --config "$KCM_BUILD_DIR/CPackConfig.cmake" -G DEB -B "$D") >"$T/cpack.log" 2>&1 || { cat "$T/cpack.log"; fail "cpack -G DEB failed"; }
  deb=$D/kcmrun_${KCM_VERSION}_amd64.deb
  [ -f "$deb" ] || { ls "$D"; fail "no $deb"; }
}

case_deb() {
  local R=$T/root deb dep rec p lib pkg
  make_deb
  [ "$(dpkg-deb -f "$deb" Package)" = kcmrun ] && [ "$(dpkg-deb -f "$deb" Version)" = "$KCM_VERSION" ] &&
    [ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || fail "control: $(dpkg-deb -f "$deb")"
  dep=" $(dpkg-deb -f "$deb" Depends | tr -d ' ' | tr ',' ' ' | sed 's/([^)]*)//g') "
  rec=" $(dpkg-deb -f "$deb" Recommends | tr -d ' ' | tr ',' ' ') "
  # kcmrun's own: the libraries it links (checked one by one below) and the libcurl it dlopens
  for p in libc6 libssh-4 liblua5.4-0 libssl3 libyaml-0-2 libcurl4; do
    [[ $dep == *" $p "* ]] || fail "Depends lacks $p: $dep"
  done
  # only the lab needs these: recommended, never required (Essential ones are named nowhere)
  for p in openssh-server openssh-client iproute2 systemd python3 openssl curl etcd-server etcd-client sudo golang-cfssl kubernetes-client; do
    [[ $dep != *" $p "* ]] || fail "Depends names $p, which only the lab or the playbooks' checks need: $dep"
    [[ $rec == *" $p "* ]] || fail "Recommends lacks $p: $rec"
  done
  for p in bash util-linux coreutils procps; do
    [[ $dep$rec != *" $p "* ]] || fail "the package names $p (Essential, or unused): Depends$dep Recommends$rec"
  done
  # nothing beyond the libraries and libcurl: 6 packages (a sanitizer build adds its runtimes)
  [ "${KCM_SANITIZE:-0}" = 1 ] || [ "$(wc -w <<<"$dep")" = 6 ] ||
    fail "Depends holds more than kcmrun's libraries and libcurl4: $dep"
  dpkg-deb -x "$deb" "$R"
  # every library the binary links, and the libcurl it dlopens, comes from a package in Depends
  for lib in $(readelf -d "$R/usr/bin/kcmrun" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p') libcurl.so.4; do
    p=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
    [ -n "$p" ] || fail "$lib: not found by ldconfig"
    pkg=""
    # merged /usr: dpkg may know the file under /lib or /usr/lib, by its link or real name
    for f in "$p" "$(readlink -f "$p")"; do
      for f in "$f" "${f#/usr}" "/usr${f#/usr}"; do
        [ -n "$pkg" ] || pkg=$(dpkg -S "$f" 2>/dev/null | head -1 | cut -d: -f1)
      done
    done
    [ -n "$pkg" ] || fail "$lib ($p): no package owns it"
    # a sanitizer build links the sanitizers' runtimes: not a dependency of a release package
    if [ "${KCM_SANITIZE:-0}" = 1 ] && [[ $lib == libasan.so.* || $lib == libubsan.so.* ]]; then continue; fi
    [[ $dep == *" $pkg "* ]] || fail "$lib comes from $pkg, not in Depends: $dep"
  done
  no_tree_paths "$R/usr/bin/kcmrun"
  for f in usr/share/kcmrun/lab/kcmlab.sh usr/share/kcmrun/playbooks/controller-manager.lua \
           usr/share/kcmrun/playbooks/templates/kube-controller-manager.service.in \
           usr/share/man/man1/kcmrun.1.gz usr/share/bash-completion/completions/kcmrun; do
    [ -f "$R/$f" ] || fail "the package lacks /$f"
  done
  mkdir -p "$T/empty" "$T/nolab" && cd "$T/empty"
  run clean "$R/usr/bin/kcmrun" --version
  expect_rc 0 --version; expect_out "^kcmrun $KCM_VERSION \(Lua 5\.4"
  run clean "$R/usr/bin/kcmrun" --help
  expect_rc 0 --help; expect_out "^usage: kcmrun \[options\] PLAYBOOK"; expect_out "kcmrun lab up"
  run clean env KCMRUN_LAB_DIR="$T/nolab" "$R/usr/bin/kcmrun" lab status
  expect_rc 3 "lab status with no lab"; expect_out "^no lab in $T/nolab"
  run clean "$R/usr/bin/kcmrun" --list-playbooks
  expect_out "^$(readlink -f "$R")/usr/share/kcmrun/playbooks/\$"
  pass "$(basename "$deb"): Depends/Recommends right, unpacked it runs --version, --help, lab status (exit 3, no lab), finds its playbooks"
}

# lintian on the .deb: no error. Its warnings are printed with the result.
case_lintian() {
  local deb rc=0 errs warns
  command -v lintian >/dev/null || fail "lintian not found: apt-get install lintian (.ci/setup.sh installs it)"
  make_deb
  # (as root it warns that it runs as root, on stderr)
  lintian --tag-display-limit 0 "$deb" >"$T/lintian.out" 2>"$T/lintian.err" || rc=$?
  errs=$(grep '^E:' "$T/lintian.out" || true)
  [ -z "$errs" ] || fail "lintian reports errors on $(basename "$deb"):
$errs"
  [ "$rc" = 0 ] || { cat "$T/lintian.out" "$T/lintian.err"; fail "lintian exited $rc"; }
  warns=$(grep -c '^W:' "$T/lintian.out" || true)
  grep '^W:' "$T/lintian.out" || true
  pass "lintian $(lintian --version | awk '{print $2}') on $(basename "$deb"): no error, $warns warnings"
}

case_lab() {
  local P=$T/prefix E=$T/empty LAB=${KCMRUN_LAB_DIR:?} first
  no_envsh
  install_to "$P"
  mkdir -p "$E" && cd "$E"
  K() { clean "$P/bin/kcmrun" "$@"; }
  K lab down >/dev/null 2>&1 || true     # a lab left over by an interrupted run
  # P is local: expand it now, the trap runs after this function returned
  trap "env -u KCMRUN_DATADIR '$P/bin/kcmrun' lab down >/dev/null 2>&1; rm -rf '$T'" EXIT
  run K lab up --nodes 3
  expect_rc 0 "installed lab up"
  run K "$P/share/kcmrun/playbooks/controller-manager.lua"
  cat "$T/out"
  expect_rc 0 "deploy without -i"
  first=$(head -1 "$T/out")
  # (other labs up on this machine are named after it)
  case "$first" in "inventory: $(readlink -f "$LAB")/inventory.lua (the running lab"*) ;; *) fail "line 1: $first" ;; esac
  for s in certificate unit start verify leader; do grep -q "^== $s" "$T/out" || fail "step $s did not run"; done
  [ "$(K lab ssh node2 systemctl is-active kube-controller-manager)" = active ] || fail "kcm not active on node2"
  # the unit came from the installed template, next to the installed playbook
  K lab ssh node1 grep -q -- --service-cluster-ip-range=10.254.0.0/16 /etc/systemd/system/kube-controller-manager.service ||
    fail "node1's unit lacks the SERVICE_CIDR flag"
  run K lab down
  expect_rc 0 "lab down"
  [ ! -e "$LAB/lab.state" ] || fail "lab.state survived down"
  run K "$P/share/kcmrun/playbooks/controller-manager.lua"
  expect_rc 2 "after down"; expect_err "$LAB/inventory.lua +no lab is up"
  pass "installed kcmrun from an empty folder: lab up, deploy (exit 0, the lab's inventory named on line 1), lab down"
}

case_readme() {
  local first
  no_envsh
  cd "$KCM_SOURCE_DIR"
  [ ! -e inventory.lua ] || fail "$KCM_SOURCE_DIR/inventory.lua exists: it would be the default inventory"
  run clean "$KCMRUN" playbooks/controller-manager.lua
  cat "$T/out"
  expect_rc 0 "kcmrun playbooks/controller-manager.lua"
  first=$(head -1 "$T/out")
  case "$first" in "inventory: $(readlink -f "$KCMRUN_LAB_DIR")/inventory.lua (the running lab"*) ;; *) fail "line 1: $first" ;; esac
  pass "from the repo root with the lab up: exit 0, $first"
}

"case_$CASE"
