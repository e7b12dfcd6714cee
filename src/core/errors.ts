/**
 * The one error family of kiln. Every error a user can see is a KilnError: it has a stable code, a
 * message for humans and the context that locates it (file, field, resource id, ...). The CLI prints
 * the message and context, never a stack unless --debug, and exits with the error's exit code.
 */

export const EXIT_BUILD_FAILED = 1;
export const EXIT_INPUT = 2;

export type KilnErrorCode =
  | 'INPUT' // bad definition, flag or file: the user can fix it
  | 'CLOUD' // a cloud API refused or failed
  | 'SSH' // connecting to or running on the build VM failed
  | 'PROVISION' // a provisioning script failed
  | 'TIMEOUT' // a condition was not met before its deadline
  | 'INTERRUPTED' // SIGINT/SIGTERM
  | 'INTEGRITY' // a checksum or digest did not match
  | 'DOWNLOAD' // fetching an artifact (release file, chart, image) failed
  | 'LOCAL' // a local tool (qemu, qemu-img, debootstrap) failed
  | 'VALIDATION' // an instance booted from the image failed its checks
  | 'INTERNAL';

export type ErrorContext = Record<string, string | number | boolean | undefined>;

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  readonly context: ErrorContext;

  constructor(code: KilnErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KilnError';
    this.code = code;
    this.context = context;
  }

  get exitCode(): number {
    return this.code === 'INPUT' ? EXIT_INPUT : EXIT_BUILD_FAILED;
  }
}

/** One problem in user input, located as precisely as we can. */
export interface InputIssue {
  file?: string;
  line?: number;
  column?: number;
  /** Dotted field path, e.g. `sizes.XS.dataDisk.sizeGb`. */
  field?: string;
  message: string;
}

/** Bad input: a definition, a flag, a file. Exit code 2. May carry several issues at once. */
export class InputError extends KilnError {
  readonly issues: InputIssue[];

  constructor(issues: InputIssue[] | InputIssue) {
    const list = Array.isArray(issues) ? issues : [issues];
    super('INPUT', list.map(formatInputIssue).join('\n'), {});
    this.name = 'InputError';
    this.issues = list;
  }
}

export function formatInputIssue(issue: InputIssue): string {
  let where = issue.file ?? '';
  if (issue.file && issue.line !== undefined) where += `:${issue.line}`;
  if (issue.file && issue.line !== undefined && issue.column !== undefined) where += `:${issue.column}`;
  const field = issue.field ? `${issue.field}: ` : '';
  return where ? `${where}: ${field}${issue.message}` : `${field}${issue.message}`;
}

export function isKilnError(err: unknown): err is KilnError {
  return err instanceof KilnError;
}

/** Wraps anything thrown into a KilnError, keeping KilnErrors as they are. */
export function asKilnError(err: unknown, code: KilnErrorCode = 'INTERNAL', context: ErrorContext = {}): KilnError {
  if (err instanceof KilnError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KilnError(code, message, context, { cause: err });
}
