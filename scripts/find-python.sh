#!/usr/bin/env bash
# Print "PATH VERSION" of a Python d2lnets supports, for the Makefile.
#   scripts/find-python.sh            3.12, then 3.11: on PATH, then where pyenv keeps them
#   scripts/find-python.sh PYTHON     that Python (make PYTHON=...), if it is supported
#   scripts/find-python.sh --all      one line for each supported version found
# Otherwise one message on standard error naming the versions and how to get
# one, and exit status 1. PATH is the interpreter itself (sys.executable),
# not a pyenv shim, so the venv made from it does not change with pyenv's setting.
set -u
SUPPORTED="3.12 3.11"
# MXNet 1.9.1's wheel asks numpy<2; numpy 1.26, the last before 2, has no
# wheel for 3.13 (measured with pip download); 3.11 and 3.12 are the ones tested.
WHY="MXNet 1.9.1, the last release, needs numpy 1.x, whose wheels stop at Python 3.12"

# "PATH VERSION" of the Python named $1, whatever its version; nothing if it does not run.
probe() {
    "$1" -c 'import sys; print(sys.executable, "%d.%d" % sys.version_info[:2])' 2>/dev/null
}

supported() {
    case " $SUPPORTED " in *" $1 "*) return 0 ;; esac
    return 1
}

if [ -n "${1:-}" ] && [ "$1" != --all ]; then
    found=$(probe "$1")
    if [ -z "$found" ]; then
        echo "make: PYTHON=$1 does not run. Give a Python ${SUPPORTED// / or } interpreter, or leave PYTHON unset" \
             "to look for one." >&2
        exit 1
    fi
    if ! supported "${found##* }"; then
        echo "make: PYTHON=$1 is Python ${found##* }; d2lnets supports Python ${SUPPORTED// / and } ($WHY)." \
             "Give one of those, or leave PYTHON unset to look for one." >&2
        exit 1
    fi
    echo "$found"
    exit 0
fi

pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for version in $SUPPORTED; do
    # Newest patch release first among pyenv's.
    for candidate in "python$version" $(ls -d "$pyenv_root"/versions/"$version".*/bin/python"$version" \
                                         2>/dev/null | sort -V -r); do
        found=$(probe "$candidate")
        if [ -n "$found" ] && [ "${found##* }" = "$version" ]; then
            echo "$found"
            [ "${1:-}" = --all ] && { any=1; break; }
            exit 0
        fi
    done
done
[ -n "${any:-}" ] && exit 0
echo "make: no Python ${SUPPORTED// / or } found on PATH or in $pyenv_root/versions." \
     "d2lnets supports Python ${SUPPORTED// / and } ($WHY)." \
     "Install one (Debian 12: apt install python3.11 python3.11-venv; Ubuntu 24.04: apt install python3.12-venv;" \
     "or pyenv install 3.12), or run make PYTHON=/path/to/python3.12" >&2
exit 1
