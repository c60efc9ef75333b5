#!/usr/bin/env bash
# image.sh builds the CPU image of image/Dockerfile here, where no base image
# can be pulled: the same layout (Debian bookworm, Python 3.11, Ray in
# /opt/ray, libtorch 2.1.0's libraries in /opt/thinkgen/lib, thinkgen in
# /usr/local/bin, the shipped base checkpoints in /opt/thinkgen/base, user
# ray uid 1000 gid 100, Ray's and the controller's ports), made from Debian
# packages and PyPI wheels.
#
#   scripts/image.sh build BINARY   build (or reuse) the image with BINARY as
#                                   thinkgen; print the unpacked image's root
#                                   filesystem (for THINKGEN_IMAGE)
#   scripts/image.sh refresh BINARY if an image of the current base was
#                                   built (make image), put BINARY in it and
#                                   print its root filesystem; else print
#                                   nothing (exit 0): what make test runs
#   scripts/image.sh rootfs         print that root filesystem if an image
#                                   was built, else nothing (exit 0)
#   scripts/image.sh oci            print the OCI layout's directory (tag cpu)
#
# Steps, all cached under $THINKGEN_CACHE (~/.cache/thinkgen)/image:
#  1. base-<key>/rootfs: mmdebstrap (Debian's package; installed with
#     apt-get once) of bookworm, variant minbase, with python3, python3-venv,
#     ca-certificates and procps from $THINKGEN_DEBIAN_MIRROR (default: the
#     Debian mirror http://deb.debian.org/debian); a venv /opt/ray with
#     scripts/requirements-ray.txt installed offline from wheels that the
#     host's pip downloaded ($CACHE/image/wheels-<hash>; host and image must
#     both be Python 3.11); the user ray; libtorch's libraries from
#     third_party/libtorch/lib. <key> hashes this script, the pins and the
#     libraries' names and sizes and the functions that build it: the base is
#     rebuilt only when one changes.
#  2. oci/: an OCI image layout (umoci, Debian's package): tag base is the
#     root filesystem as one layer (made once per base), tag cpu adds the
#     thinkgen binary and the shipped base checkpoints (base/ at
#     /opt/thinkgen/base) as two more layers and the image config (user,
#     env, ports, working directory), redone when either changes.
#  3. bundle/: tag cpu unpacked with `umoci unpack` (the runtime bundle:
#     rootfs/ and config.json), which the image test runs in (chroot).
#
# Needs root (mmdebstrap's root mode, chroot, files owned by root) and
# apt-get for the first build. Progress goes to stderr; stdout is only the
# path asked for.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}/image
MIRROR=${THINKGEN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
REQ=$root/scripts/requirements-ray.txt
LIBS=$root/third_party/libtorch/lib
PYTHON_MM=3.11 # bookworm's python3

log() { printf 'image.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

need_tools() {
	local missing=()
	command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
	command -v umoci >/dev/null || missing+=(umoci)
	[[ ${#missing[@]} -eq 0 ]] && return
	# shellcheck source=apt.sh
	. "$root/scripts/apt.sh"
	local p
	for p in "${missing[@]}"; do
		apt_install image.sh "$p" "run 'apt-get install mmdebstrap umoci' as root" || exit 1
	done
}

base_key() {
	[[ -d $LIBS ]] || die "no $LIBS: run make build (scripts/setup-libtorch.sh) first"
	{
		declare -f build_base wheels in_root
		cat "$REQ"
		(cd "$LIBS" && stat -L -c '%n %s' -- *)
		echo "$MIRROR"
	} | sha256sum | cut -c1-12
}

# wheels downloads (once) the Ray pins' wheels with the host's pip.
wheels() {
	local dir=$CACHE/wheels-$(sha256sum "$REQ" | cut -c1-12)
	if [[ ! -f $dir/.complete ]]; then
		local v
		v=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
		[[ $v == "$PYTHON_MM" ]] || die "the host's python3 is $v; the image's is $PYTHON_MM (wheels must match)"
		rm -rf "$dir"
		mkdir -p "$dir"
		log "downloading the Ray wheels (once)"
		python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
			--cache-dir "${THINKGEN_CACHE:-$HOME/.cache/thinkgen}/pip" -d "$dir" -r "$REQ" >&2
		touch "$dir/.complete"
	fi
	echo "$dir"
}

# in_root runs a command inside the root filesystem $1 with a clean
# environment (the host's PIP_* settings stay out).
in_root() {
	local r=$1
	shift
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		chroot "$r" "$@"
}

build_base() {
	local dir=$1 t0=$SECONDS
	rm -rf "$dir"
	mkdir -p "$dir"
	log "building the base root filesystem in $dir (Debian bookworm from $MIRROR)"
	mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,procps \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		bookworm "$dir/rootfs" "$MIRROR" >&2
	log "debootstrapped in $((SECONDS - t0)) s; installing Ray"
	local w
	w=$(wheels)
	mkdir -p "$dir/rootfs/tmp/wheels"
	cp "$w"/*.whl "$dir/rootfs/tmp/wheels/"
	cp "$REQ" "$dir/rootfs/tmp/requirements-ray.txt"
	in_root "$dir/rootfs" /bin/sh -c 'python3 -m venv /opt/ray &&
		/opt/ray/bin/pip install --quiet --disable-pip-version-check --no-index --find-links /tmp/wheels -r /tmp/requirements-ray.txt &&
		/opt/ray/bin/python -c "import ray, ray.dashboard.modules.job.job_head"' >&2
	rm -rf "$dir/rootfs/tmp/wheels" "$dir/rootfs/tmp/requirements-ray.txt"
	# The Ray images' user: uid 1000, group users (100).
	in_root "$dir/rootfs" useradd --uid 1000 --gid 100 --create-home --shell /bin/bash ray
	mkdir -p "$dir/rootfs/opt/thinkgen/lib" "$dir/rootfs/home/ray/work"
	cp -L "$LIBS"/* "$dir/rootfs/opt/thinkgen/lib/"
	chown 1000:100 "$dir/rootfs/home/ray/work"
	rm -rf "$dir/rootfs/var/cache/apt/"* "$dir/rootfs/var/lib/apt/lists/"* \
		"$dir/rootfs/usr/share/doc" "$dir/rootfs/usr/share/man" "$dir/rootfs/usr/share/locale"
	touch "$dir/.complete"
	log "base root filesystem built in $((SECONDS - t0)) s"
}

# oci_base makes tag base of the layout from the base root filesystem.
oci_base() {
	local base=$1 oci=$2 t0=$SECONDS
	rm -rf "$oci" "$CACHE/base-bundle"
	umoci init --layout "$oci"
	umoci new --image "$oci:base"
	umoci unpack --image "$oci:base" "$CACHE/base-bundle" >&2
	cp -a "$base/rootfs/." "$CACHE/base-bundle/rootfs/"
	umoci repack --image "$oci:base" --history.created_by 'scripts/image.sh: Debian bookworm, Ray, libtorch libraries' "$CACHE/base-bundle" >&2
	rm -rf "$CACHE/base-bundle"
	echo "$base" >"$oci/.base"
	log "OCI base layer packed in $((SECONDS - t0)) s"
}

build() {
	local bin=$1
	[[ -x $bin ]] || die "$bin: not an executable (make build first)"
	[[ $(id -u) == 0 ]] || die "building the image needs root (mmdebstrap, chroot)"
	need_tools
	mkdir -p "$CACHE"
	local t0=$SECONDS key base oci=$CACHE/oci bundle=$CACHE/bundle
	key=$(base_key)
	base=$CACHE/base-$key
	[[ -f $base/.complete ]] || build_base "$base"
	if [[ ! -f $oci/.base || $(cat "$oci/.base") != "$base" ]]; then
		oci_base "$base" "$oci"
		rm -f "$oci/.binary"
	fi
	local sum
	sum=$( (sha256sum <"$bin" && cd "$root" && find base -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-64)
	if [[ ! -f $oci/.binary || $(cat "$oci/.binary") != "$sum" || ! -f $bundle/config.json ]]; then
		local stage
		stage=$(mktemp -d)
		install -m 0755 "$bin" "$stage/thinkgen"
		umoci rm --image "$oci:cpu" 2>/dev/null || true
		umoci tag --image "$oci:base" cpu
		umoci insert --image "$oci:cpu" --history.created_by 'scripts/image.sh: thinkgen' "$stage/thinkgen" /usr/local/bin/thinkgen >&2
		umoci insert --image "$oci:cpu" --history.created_by 'scripts/image.sh: the shipped base checkpoints' "$root/base" /opt/thinkgen/base >&2
		rm -rf "$stage"
		umoci config --image "$oci:cpu" \
			--config.user 1000:100 --config.workingdir /home/ray/work \
			--config.env PATH=/opt/ray/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			--config.env LD_LIBRARY_PATH=/opt/thinkgen/lib \
			--config.env HOME=/home/ray --config.env LANG=C.UTF-8 \
			--config.exposedports 6379/tcp --config.exposedports 8265/tcp \
			--config.exposedports 10001/tcp --config.exposedports 7700/tcp \
			--config.cmd /bin/bash \
			--config.label org.opencontainers.image.title=thinkgen \
			--config.label "io.ray.version=$(sed -n 's/^ray\[default\]==//p' "$REQ")" \
			--config.label org.opencontainers.image.source=image/Dockerfile >&2
		umoci gc --layout "$oci"
		rm -rf "$bundle"
		umoci unpack --image "$oci:cpu" "$bundle" >&2
		echo "$sum" >"$oci/.binary"
		log "image $oci:cpu ($(du -sh "$oci/blobs" | cut -f1) compressed, $(du -sh "$bundle/rootfs" | cut -f1) unpacked) ready in $((SECONDS - t0)) s"
	fi
	echo "$bundle/rootfs"
}

case ${1:-} in
build)
	[[ $# -eq 2 ]] || die "usage: $0 build BINARY"
	build "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
	;;
refresh)
	[[ $# -eq 2 ]] || die "usage: $0 refresh BINARY"
	if [[ $(id -u) == 0 && -f $CACHE/oci/.base && -f $CACHE/base-$(base_key)/.complete ]]; then
		build "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
	else
		log "no image of the current base (make image builds it): its test is skipped"
	fi
	;;
rootfs)
	if [[ -f $CACHE/bundle/config.json ]]; then
		echo "$CACHE/bundle/rootfs"
	fi
	;;
oci) echo "$CACHE/oci" ;;
*)
	echo "usage: $0 build BINARY | refresh BINARY | rootfs | oci" >&2
	exit 2
	;;
esac
