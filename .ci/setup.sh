#!/bin/bash
# Installs every Debian package that kcmrun's build, tests and lab need
# (idempotent, non-interactive, one apt-get update at most), then builds
# build/kcmrun and installs it onto PATH (/usr/local/bin/kcmrun, its lab and
# playbooks under /usr/local/share/kcmrun). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4 lua-cjson-dev libssl-dev libssh-dev libcurl4-openssl-dev libyaml-dev
  openssl golang-cfssl
  openssh-server openssh-client iproute2 procps util-linux systemd
  python3 python3-yaml curl sudo etcd-server etcd-client
  clang libclang-rt-14-dev valgrind hyperfine time lintian
)

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and the lab needs root)" >&2
  exit 2
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  # openssh-server's postinst would start an sshd on the host: the lab runs its
  # own sshd inside each node, the host needs none.
  policy_made=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_made=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$policy_made" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cmake --install build --prefix /usr/local >/dev/null
echo "setup.sh: built $(pwd)/build/kcmrun, installed $(command -v kcmrun || echo /usr/local/bin/kcmrun)"
