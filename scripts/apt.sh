# apt.sh is sourced by the scripts that install a Debian package once
# (gloo.sh, chromium.sh); it is not run on its own.
#
#   apt_install WHO PACKAGE HINT
#
# installs PACKAGE with apt-get (--no-install-recommends, at nice 19), as
# root or through passwordless sudo, waiting up to 10 minutes for another
# apt-get instead of failing. WHO prefixes the progress lines (stderr);
# HINT is what the user is told to do by hand when there is no root or no
# apt-get. It returns non-zero, having said why, when it cannot install.
apt_install() {
	local who=$1 pkg=$2 hint=$3
	local as_root=()
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			as_root=(sudo -n)
		else
			echo "$who: installing $pkg needs root: $hint" >&2
			return 1
		fi
	fi
	command -v apt-get >/dev/null 2>&1 || {
		echo "$who: there is no apt-get to install $pkg: $hint" >&2
		return 1
	}
	echo "$who: installing Debian's $pkg (first time only)" >&2
	local lock=(-o DPkg::Lock::Timeout=600)
	DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get "${lock[@]}" update -qq >&2
	DEBIAN_FRONTEND=noninteractive "${as_root[@]}" nice -n 19 apt-get "${lock[@]}" install -y -qq --no-install-recommends "$pkg" >&2
}
