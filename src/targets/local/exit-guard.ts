/**
 * QEMU runs in a session of its own, so neither a Ctrl-C on kiln's terminal nor kiln's exit takes
 * it down by itself: kiln decides. A VM this process started is terminated (SIGTERM: QEMU quits and
 * removes its pid file and socket) when the process exits, unless it was kept: `--on-error abort`
 * keeps the build VM for debugging and for `--resume`. A SIGKILLed kiln runs no exit handler at all;
 * its VMs are in the ledger, for `kiln cleanup`.
 */
const guarded = new Set<number>();
let installed = false;

/** Terminates `pid` when this process exits; returns the call that lifts that (VM kept or exited). */
export function terminateAtExit(pid: number): () => void {
  if (!installed) {
    process.on('exit', terminateGuarded);
    installed = true;
  }
  guarded.add(pid);
  return () => guarded.delete(pid);
}

function terminateGuarded(): void {
  for (const pid of guarded) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}
