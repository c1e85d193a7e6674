# Sourced by the set-up scripts: apt_install <who> <package>… installs Debian packages as root
# (apt-get update once per shell), or says what to install and fails when not root.
apt_updated=""
apt_install() {
  local who=$1
  shift
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "$who: missing $* (install them, e.g. apt-get install $*)" >&2
    return 1
  fi
  echo "$who: installing $* with apt-get" >&2
  if [[ -z $apt_updated ]]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
