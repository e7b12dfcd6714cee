/** Thrown by a command that has already reported its outcome and only needs to set the exit code. */
export class CommandExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}
