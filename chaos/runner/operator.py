"""The operator of a game day: keys on the terminal, step-mode questions, and the kill switch.

Keys are read in a thread of their own (never a blocking read on the listeners' event loop), from
a terminal put in cbreak mode for the run (each key arrives at once and is not echoed; Ctrl-C
still interrupts) and restored on every exit path. Without a terminal nothing is read, so a run
in CI or under pytest behaves as before.

SIGUSR1 is the kill switch for whoever has no terminal (a CI job, a colleague's shell). It is
blocked in the run's threads and taken by a thread of its own with sigtimedwait, whose siginfo
names the sender (uid, pid): the journal records who stopped the run, not only that it stopped.
A SIGUSR1 that reaches a thread that does not block it (one started before the run) still stops
the run, through an ordinary handler that cannot know the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pwd
import select
import signal
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from typing import Any

KILL_SIGNAL = signal.SIGUSR1
POLL = 0.2  # how often the reader threads look up from their wait to see whether the run is over


def login_user() -> str:
    """Who is at the keyboard: the user behind sudo if any, else the login user."""
    for var in ("SUDO_USER",):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:
        return f"uid {os.getuid()}"


def user_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def sender(uid: int | None, pid: int | None) -> dict[str, Any]:
    """Who sent the kill signal, as the journal records it."""
    who: dict[str, Any] = {"how": "signal", "signal": KILL_SIGNAL.name}
    if uid is None:
        who["by"] = "unknown (the signal reached a thread that could not see its sender)"
        return who
    who.update(by=user_of(uid), uid=uid, pid=pid)
    try:
        with open(f"/proc/{pid}/comm") as fh:
            who["command"] = fh.read().strip()
    except OSError:
        pass
    return who


def may_read(fd: int) -> bool:
    """A terminal this process may read without being stopped: its controlling terminal with this
    process in the foreground (a background read gets SIGTTIN, which stops it), or a terminal that
    is not its controlling one (a pty handed to it)."""
    if not os.isatty(fd):
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True  # not the controlling terminal: no job control applies to it


@contextlib.contextmanager
def holding_kill_signal() -> Iterator[None]:
    """For a program that starts threads before its run (numpy's BLAS pool starts when numpy is
    imported): SIGUSR1 blocked in the main thread first, so that every thread inherits it blocked
    and the run's waiter sees each SIGUSR1 with its sender. One sent before the run waits, pending,
    and stops the run as soon as it starts; one still pending at the end is dropped (the run it
    was meant for is over), and the mask is restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {KILL_SIGNAL})
    try:
        yield
    finally:
        while KILL_SIGNAL in signal.sigpending():
            signal.sigtimedwait({KILL_SIGNAL}, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class KeyReader:
    """Key presses from a file descriptor, handed one character at a time to `on_key` (called in
    the reader's thread). A terminal is set to cbreak while reading and restored by `stop`."""

    def __init__(self, fd: int, on_key: Callable[[str], None]):
        self.fd = fd
        self.on_key = on_key
        self._saved: list[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if os.isatty(self.fd):
            try:
                self._saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd, termios.TCSANOW)
            except termios.error:
                self._saved = None
        self._thread = threading.Thread(target=self._read, name="deadair-keys", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], POLL)
                if not ready:
                    continue
                if self._saved is not None and not may_read(self.fd):
                    self._stop.wait(POLL)  # sent to the background meanwhile: reading would stop the process
                    continue
                data = os.read(self.fd, 64)
            except (OSError, ValueError):
                return
            if not data:
                return  # end of input: no more keys (the signal still works)
            for ch in data.decode(errors="ignore"):
                try:
                    self.on_key(ch)
                except Exception:
                    pass  # a key must never take the reader down: the kill switch lives here

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * POLL + 1)
        if self._saved is not None:
            # SIGTTOU blocked: a run sent to the background still restores its terminal, unstopped
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            except termios.error:
                pass
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            self._saved = None


class KillSignal:
    """SIGUSR1 as the kill switch, with its sender. `on_kill(who)` is called in the waiter's
    thread (or, for a signal whose sender is unknown, in the main thread); `in_main()` is called
    in the main thread when the waiter pokes it (`poke`), so the run can stop what the main thread
    is doing (the stack starting)."""

    def __init__(self, on_kill: Callable[[dict[str, Any]], None], in_main: Callable[[], None]):
        self.on_kill = on_kill
        self.in_main = in_main
        self.active = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._old_handler: Any = None
        self._old_mask: set[Any] | None = None
        self._poked = threading.Event()

    def start(self) -> None:
        """Only in the main thread (where signal handlers live); elsewhere the signal keeps its
        default (the run's caller owns it)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._old_handler = signal.signal(KILL_SIGNAL, self._handler)
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {KILL_SIGNAL})
        self._thread = threading.Thread(target=self._wait, name="deadair-kill-signal", daemon=True)
        self._thread.start()
        self.active = True

    def _wait(self) -> None:
        while not self._stop.is_set():
            info = signal.sigtimedwait({KILL_SIGNAL}, POLL)
            if info is not None and not self._stop.is_set():
                self.on_kill(sender(info.si_uid, info.si_pid))

    def poke(self) -> None:
        """From another thread: have the main thread call `in_main` (at its next bytecode)."""
        if self.active:
            import _thread

            self._poked.set()
            _thread.interrupt_main(KILL_SIGNAL)

    def _handler(self, _signum: int, _frame: Any) -> None:
        if self._poked.is_set():
            self._poked.clear()
        else:  # a real SIGUSR1 that a thread not blocking it took: its sender is unknown
            self.on_kill(sender(None, None))
        self.in_main()

    def stop(self) -> None:
        """Unblock and restore the previous handler; a SIGUSR1 still pending reaches this run's
        handler (the run is over by then: it is ignored), never the default (which would kill)."""
        if not self.active:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * POLL + 1)
        self.active = False
        if self._old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        signal.signal(KILL_SIGNAL, self._old_handler)


class Prompter:
    """Step mode's questions, one at a time, answered by a key: `y` injects, `s` skips (`k`, the
    kill switch, is the run's: it never reaches here)."""

    ANSWERS = ("y", "s")

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: asyncio.Future[str] | None = None
        self._one_at_a_time: asyncio.Lock | None = None

    async def ask(self, question: str) -> str:
        """Ask and wait for `y` or `s` (other keys are refused with a hint)."""
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:
            self._loop = asyncio.get_running_loop()
            self._pending = self._loop.create_future()
            self.say(question)
            try:
                return await self._pending
            finally:
                self._pending = None

    @property
    def waiting(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def key(self, ch: str) -> None:
        """A key, from any thread: answers the question being asked, if one is."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._answer, ch)
        except RuntimeError:
            pass  # the loop closed in between

    def _answer(self, ch: str) -> None:
        fut = self._pending
        if fut is None or fut.done():
            return
        if ch.lower() in self.ANSWERS:
            fut.set_result(ch.lower())
        elif ch.strip():
            self.say(f"  ({ch!r}: press y to inject, s to skip, k to stop the run and roll back)")
