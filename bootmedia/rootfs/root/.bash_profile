# The rescue program starts by itself on the first screen and on the serial console.
# Leaving it gives a shell; `b365 rescue` starts it again.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
case "$(tty)" in
  /dev/tty1 | /dev/ttyS0)
    if [ -z "${B365_RESCUE_STARTED:-}" ]; then
      export B365_RESCUE_STARTED=1
      b365 rescue
      echo "Type 'b365 rescue' to start the rescue program again, 'reboot' or 'poweroff' to leave."
    fi
    ;;
esac
