// One base for every error that callers and tests tell apart by a stable `code` rather than by
// message text (as websockets/ws does).

export class CodedError<Code extends string> extends Error {
  readonly code: Code;
  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
