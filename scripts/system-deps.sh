#!/usr/bin/env bash
# Install the Debian packages d2lnets needs, when running as root with apt;
# otherwise say in one message what to install. Each argument is
# PACKAGE:PATH, PATH being a file or folder whose presence means "already there".
set -u
missing=()
for spec in "$@"; do
    pkg=${spec%%:*}
    path=${spec#*:}
    [ -e "$path" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists: update first, once.
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "error: apt-get could not install ${missing[*]}" >&2; exit 1; }
else
    echo "note: the Debian packages ${missing[*]} are missing; install them with" >&2
    echo "      sudo apt-get install ${missing[*]}" >&2
    case " ${missing[*]} " in *" dataset-fashion-mnist "*)
        echo "      (or put the four Fashion-MNIST *-ubyte.gz files in \$D2LNETS_DATA/fashion-mnist" >&2
        echo "      or ~/.mxnet/datasets/fashion-mnist, where d2lnets and MXNet look for them)" >&2 ;;
    esac
fi
