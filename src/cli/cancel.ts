/**
 * Ctrl-C: a command stopped by it says "cancelled", undoes what it had begun and must not leave
 * half made (each registers that with `onCancel`), and exits 130, as an interrupted program does.
 * Server commands, which stop cleanly on Ctrl-C, take the signal over (`takeOverInterrupt`).
 */
const undo = new Set<() => void>();

function cancel(): void {
  for (const fn of [...undo].reverse()) {
    try {
      fn();
    } catch {
      // Undoing goes on: one step that fails must not keep the others from running.
    }
  }
  process.stderr.write('\ndkms: cancelled\n');
  process.exit(130);
}

/** Makes Ctrl-C cancel the command (once per process). */
export function installInterrupt(): void {
  if (!process.listeners('SIGINT').includes(cancel)) process.on('SIGINT', cancel);
}

/** For a command that handles Ctrl-C itself from now on (a server that stops cleanly). */
export function takeOverInterrupt(): void {
  process.off('SIGINT', cancel);
}

/** Runs `fn` if the command is cancelled before the returned function is called. */
export function onCancel(fn: () => void): () => void {
  undo.add(fn);
  return () => {
    undo.delete(fn);
  };
}
