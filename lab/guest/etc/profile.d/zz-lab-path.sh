# shellcheck shell=sh
# zbm lab: the logging wrappers (/usr/local/sbin/zfs, /usr/local/bin/ssh) and
# fakes (qm, lab-reset) must come first for login shells too.
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH
