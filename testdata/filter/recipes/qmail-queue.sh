#!/bin/sh
# /usr/local/libexec/mxfilter-qmail-queue: QMAILQUEUE runs a program
# without arguments, so the flags live in this wrapper.
exec /usr/local/sbin/mxfilter qmail-queue \
	--clamd 127.0.0.1:3310 --spamd 127.0.0.1:783 \
	-- /var/qmail/bin/qmail-queue
