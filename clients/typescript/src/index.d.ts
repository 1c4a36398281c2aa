// Types for the opslog Node client (src/index.js), written in terms of the API's own types
// (src/api.d.ts, generated from openapi.json; test/types.test.js fails when they drift).

import type * as api from './api';

export type { api };
export type Level = api.Level;
export type OperationType = api.OpType;

export interface OpslogOptions {
  /** Daemon URL; default `OPSLOG_URL` or http://127.0.0.1:7400. */
  url?: string;
  /** The environment's ingest key (all the client needs: it only writes); default `OPSLOG_TOKEN`. */
  token?: string;
  /** Environment; default `OPSLOG_ENV` or `prod`. */
  environment?: string;
  /** Messages per request (max 1000); a full batch is sent at once. Default 100. */
  batchSize?: number;
  /** A partial batch is sent after this long. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Messages held while the daemon is slow or down; beyond it the oldest are dropped. Default 10000. */
  maxBufferSize?: number;
  /** Retries of one request on network errors, 408, 429 and 5xx. Default 5. */
  maxRetries?: number;
  /** Backoff base and cap (full jitter, doubling per attempt). Defaults 200 ms and 10 s. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Per-request timeout. Default 10 s. */
  requestTimeoutMs?: number;
  /** Extra header names / query parameter and body key names to redact. */
  redactHeaders?: string[];
  redactParams?: string[];
  /** Where logging failures go (never thrown). Default: console.warn; null: ignore them. */
  onError?: ((error: Error) => void) | null;
  /** Flush on `beforeExit`. Default true. */
  flushOnExit?: boolean;
  /** A fetch implementation; default the global fetch. */
  fetch?: typeof fetch;
}

export interface StartOperationOptions {
  type?: OperationType;
  action?: string;
  integration?: string;
  connectionId?: string;
  connection_id?: string;
  script?: string;
  /** Nango's provider key, e.g. `github`. */
  provider?: string;
  message?: string;
  meta?: unknown;
  /** Who the operation acts for (Nango's end user). */
  endUser?: api.EndUser;
  end_user?: api.EndUser;
  /** String labels (at most 32). */
  tags?: Record<string, string>;
  /** An action whose caller does not wait: its end sends `action.completed`. */
  async?: boolean;
  /** How a sync run began. */
  syncType?: api.SyncType;
  sync_type?: api.SyncType;
  /** The checkpoint a sync run started from (`from`, null for a full run) and the one it saved. */
  checkpoints?: NonNullable<api.NewOperation['checkpoints']>;
  /** The connection's auth mode, as Nango names it. */
  authMode?: NonNullable<api.NewOperation['auth_mode']>;
  auth_mode?: NonNullable<api.NewOperation['auth_mode']>;
  /**
   * The W3C trace the operation joins. Default: the active OpenTelemetry span's, when
   * `@opentelemetry/api` is installed.
   */
  traceContext?: { traceparent: string; tracestate?: string };
  trace_context?: { traceparent: string; tracestate?: string };
}

export interface EndOptions {
  /** A sync's counts per model. */
  records?: RecordCount[];
  /** The checkpoint a sync run started from and the one it saved. */
  checkpoints?: NonNullable<api.OperationPatch['checkpoints']>;
  /** What an action returned (served at `GET /operations/{id}/output`). */
  output?: api.Json;
  syncType?: api.SyncType;
}

export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now. Default 300 s. */
  toleranceSeconds?: number;
  /** Now, in unix seconds (for tests). */
  now?: number;
}

export interface LogOptions {
  level?: Level;
  meta?: unknown;
  error?: unknown;
}

export type HeadersLike =
  | Record<string, string | string[] | number | undefined>
  | Iterable<[string, string]>
  | { forEach(cb: (value: string, name: string) => void): void };

export interface HttpRequestLike {
  method?: string;
  url: string;
  headers?: HeadersLike;
  body?: unknown;
}

export interface HttpResponseLike {
  status: number;
  headers?: HeadersLike;
  body?: unknown;
}

export interface HttpOptions {
  durationMs?: number;
  duration_ms?: number;
  level?: Level;
  message?: string;
  retry?: { attempt: number; max: number; waited_ms?: number };
  error?: unknown;
  meta?: unknown;
}

export type RecordCount = api.RecordCount;

export interface Stats {
  sent: number;
  dropped: number;
  failedRequests: number;
  buffered: number;
}

export declare class Operation {
  /** The daemon's id, once it created the operation. */
  readonly id: string | null;
  /** True when the daemon never accepted the operation (its messages are dropped). */
  readonly failed: boolean;
  log(message: string, options?: LogOptions): void;
  http(request: HttpRequestLike | null, response?: HttpResponseLike | null, options?: HttpOptions): void;
  end(recordsOrOptions?: RecordCount[] | EndOptions): Promise<void>;
  fail(error: unknown): Promise<void>;
}

export declare class Opslog {
  constructor(options?: OpslogOptions);
  startOperation(options?: StartOperationOptions): Operation;
  stats(): Stats;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export declare class OpslogApiError extends Error {
  readonly status: number;
  readonly code: string;
}

export declare const REDACTED: '[REDACTED]';
export declare function redactHeaders(headers: HeadersLike | undefined, extra?: string[]): Record<string, string> | undefined;
export declare function redactUrl(url: string, extra?: string[]): string;
export declare function redactBody<T>(body: T, extra?: string[]): T;
export declare function parseRetryAfter(value: string | null | undefined, now?: number): number | null;
export declare function verifyWebhook(
  secret: string,
  body: string | Uint8Array,
  headers: HeadersLike,
  options?: VerifyOptions
): boolean;
/** The fields of POST /operations the client sets, as [wire name, option name]. */
export declare const START_FIELDS: ReadonlyArray<readonly [keyof api.NewOperation, string]>;
/** The fields of PATCH /operations/{id} that `end()` takes, as [wire name, option name]. */
export declare const END_FIELDS: ReadonlyArray<readonly [keyof api.OperationPatch, string]>;
export declare function backoffMs(attempt: number, baseMs: number, maxMs: number, random?: () => number): number;
