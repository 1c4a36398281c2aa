// Generated from openapi.json by scripts/gen-types.js: do not edit.
// test/types.test.js fails when this file and the API document differ.

/** Which credential acted. Append variants; never reorder. */
export type ActorRole = "admin" | "key" | "system" | "unknown";

/** How the request came. */
export type ActorVia = "api" | "dashboard" | "server";

/** One rule, as the config file, `PUT /settings` and `GET /settings` write it: what it counts
 * (a `signal`, or any saved or built-in `view`), over which window, above which threshold, and
 * whom it tells. */
export type AlertRule = {
  /** Fires when the count over `window` is above this (at most 1,000,000,000). */
  above: number;
  /** Count only this integration's; absent: every integration. */
  integration?: string | null;
  /** Where firing and resolving are told (default `["webhook"]`); each other notifier must be
   * set up under `notifiers`. */
  notify?: Array<Notifier>;
  signal?: null | Signal;
  /** The id of a view of the environment (saved or built-in): the rule counts what the view's
   * query counts over `window`. Give `signal` or `view`, not both. */
  view?: string | null;
  /** How far back the count looks, 1m to 24h (`"15m"`). */
  window: Duration1mTo1d;
};

export type AlertsView = {
  /** The config file sets the rules: change them there. */
  read_only: boolean;
  /** Each fires `alert.triggered` when its signal's count over its window goes above `above`,
   * and `alert.resolved` when it is back at or under it. */
  rules: Array<AlertRule>;
};

/** One attempt to send a job. */
export type Attempt = {
  duration_ms: number;
  /** Why no usable response came (connection refused, timeout, ...). */
  error?: string | null;
  number: number;
  /** What followed: `delivered`, `failed`, or `pending` with `retry_at`. */
  outcome: DeliveryStatus;
  /** The start of the response body, at most 4 KB. */
  response_excerpt?: string | null;
  retry_at?: null | Timestamp;
  started_at: Timestamp;
  /** The response status, when a response came. */
  status?: number | null;
  url: string;
  /** The unix-seconds `webhook-timestamp` the attempt was signed with. */
  webhook_timestamp: number;
};

/** What was done. Append variants; never reorder. */
export type AuditAction = "settings.change" | "webhook_secret.rotate" | "webhook_secret.reveal" | "ingress_token.rotate" | "delivery.retry" | "deliveries.replay" | "export.retry" | "exports.replay" | "import" | "backup.download" | "erasure.start" | "erasure.finish" | "view.create" | "view.change" | "view.delete" | "session.sign_in" | "session.sign_in_refused";

/** Who acted: the kind of credential and where from; never the credential. */
export type AuditActor = {
  /** The client's IP address. */
  address?: string | null;
  /** A key's environment. */
  environment?: string | null;
  role: ActorRole;
  /** A key's scope: `ingest`, `read` or `ingest+read`. */
  scope?: string | null;
  via: ActorVia;
};

/** An audit record in the API. */
export type AuditView = {
  action: AuditAction;
  actor: AuditActor;
  at: Timestamp;
  /** What the action changed or counted: a settings change's `changes` (`key`, `old`, `new`;
   * secrets masked as `GET /settings` masks them), a replay's `requeued`, an erasure's
   * `selector` and `removed` counts, a sign-in's refusal `reason`. */
  detail: {
    [key: string]: unknown;
  };
  environment?: string | null;
  id: Id;
  target?: string | null;
};

export type AuditViewPage = {
  data: Array<AuditView>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

/** Operations started in one time bucket (created, for those with no start), by state. */
export type Bucket = {
  cancelled: number;
  failed: number;
  /** Waiting or running. */
  running: number;
  start: Timestamp;
  success: number;
  timeout: number;
};

/** The JSON of `GET /deliveries/{id}`: the delivery, its body and every attempt. */
export type DeliveryDetail = DeliveryView & {
  attempt_log: Array<Attempt>;
  body: unknown;
};

/** Where a delivery (one event on its way to one URL) stands. */
export type DeliveryStatus = "pending" | "delivered" | "failed";

/** The JSON of a delivery in `GET /deliveries`. */
export type DeliveryView = {
  attempts: number;
  created_at: Timestamp;
  event: EventType;
  event_id: string;
  /** The body shape sent (the URL's `format` when the delivery was queued). */
  format: WebhookFormat;
  id: Id;
  last_error?: string | null;
  /** The response status of the latest attempt (null before the first attempt, or when that
   * attempt got no response: `last_error` says why). Filled by the handler, which reads the
   * attempts; `Job::view` leaves it empty. */
  last_status?: number | null;
  log_operation_id: Id;
  next_attempt_at?: null | Timestamp;
  /** Where it goes: `webhook` (the signed event to `url`), `slack`, `pagerduty` or `email`
   * (an alert's notification; `url` then names the destination without its secret). */
  notifier: Notifier;
  operation_id: Id;
  status: DeliveryStatus;
  updated_at: Timestamp;
  url: string;
  /** The `webhook-id` header: constant over every attempt, the receiver's dedup key. */
  webhook_id: string;
};

export type DeliveryViewPage = {
  data: Array<DeliveryView>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

/** a duration from 0s to 7d: one whole number and one unit (ms, s, m, h or d) */
export type Duration0sTo7d = string;

/** a duration from 1m to 1d: one whole number and one unit (ms, s, m, h or d) */
export type Duration1mTo1d = string;

/** a duration from 1ms to 5m: one whole number and one unit (ms, s, m, h or d) */
export type Duration1msTo5m = string;

/** a duration from 1s to 366d: one whole number and one unit (ms, s, m, h or d) */
export type Duration1sTo366d = string;

/** Email over SMTP: plain text and HTML parts with the same content, to every address of `to`. */
export type EmailNotifier = {
  /** A PEM file of certificates to trust besides the public roots (a private CA's, or the
   * server's own self-signed one). */
  ca_file?: string | null;
  /** The sender, `alerts@example.com` or `opslog <alerts@example.com>`. */
  from: string;
  /** The recipients (1 to 20). */
  to: Array<string>;
  /** `smtp://[user[:password]@]host[:port]` (STARTTLS required; port 587 by default;
   * `?tls=none` for a plain connection), or `smtps://…` (TLS from the start; port 465).
   * The password is shown masked. */
  url: string;
};

/** The person of the user's own product an operation acted for (Nango's end user): what matches
 * a new connection to the user who made it. */
export type EndUser = {
  display_name?: string | null;
  email?: string | null;
  id: string;
  organization?: null | Organization;
};

/** The read endpoints whose query strings the table declares (paths under `/v1/env/{env}`). */
export type Endpoint = "operations" | "messages" | "operation_messages" | "facets" | "insights" | "signals";

export type Environment = {
  name: string;
};

export type EnvironmentPage = {
  data: Array<Environment>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

/** What an erasure has removed so far. */
export type EraseCounts = {
  /** Their delivery attempts. */
  attempts: number;
  messages: number;
  operations: number;
  /** Outbox jobs: webhook deliveries and OTLP exports. */
  outbox_jobs: number;
};

/** The selector as the API shows it: exactly one field is set. */
export type EraseSelectorView = {
  connection_id?: string | null;
  end_user_id?: string | null;
  integration?: string | null;
};

/** The JSON of an erasure. */
export type EraseView = {
  created_at: Timestamp;
  environment: string;
  finished_at?: null | Timestamp;
  from?: null | Timestamp;
  id: Id;
  /** What was removed so far. */
  removed: EraseCounts;
  selector: EraseSelectorView;
  /** `running` or `done`. */
  state: string;
  /** Operations recorded before it: the request's `to`, or when the erasure was asked for. */
  to: Timestamp;
};

export type EraseViewPage = {
  data: Array<EraseView>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

/** The body of every non-2xx answer. */
export type ErrorBody = {
  error: ErrorDetail;
};

export type ErrorDetail = {
  /** Stable, machine-readable, e.g. `invalid_field` or `operation_not_found`. */
  code: string;
  /** The input at fault (a body field path like `[1].level`, a query parameter or a header). */
  field?: string | null;
  /** What went wrong and what to do about it, for a person. */
  message: string;
};

export type ErrorInfo = {
  message: string;
  name?: string | null;
  payload?: null | Json;
  type?: string | null;
};

/** Something the user's backend is notified of (README "Webhooks"); the name is the `type` of
 * the webhook body. */
export type EventType = "sync.completed" | "sync.records" | "auth.created" | "auth.failed" | "webhook.received" | "action.completed" | "alert.triggered" | "alert.resolved";

/** One attempt of an export: the request it was part of and what came back. */
export type ExportAttemptView = {
  /** Jobs sent in the same request. */
  batch_size?: number | null;
  duration_ms: number;
  /** Why it failed, or the collector's partial-success message. */
  error?: string | null;
  number: number;
  outcome: DeliveryStatus;
  /** Items of that request the collector refused for good (partial success). */
  rejected?: number | null;
  retry_at?: null | Timestamp;
  started_at: Timestamp;
  /** The collector's HTTP status, when it answered. */
  status?: number | null;
  url: string;
};

/** The JSON of `GET /exports/{id}`: the export and every attempt. */
export type ExportDetail = ExportView & {
  attempt_log: Array<ExportAttemptView>;
};

/** The closing line: how many operation and message lines came before it. */
export type ExportEnd = {
  messages: number;
  operations: number;
};

/** one line of an export: an operation, one of its messages, or the closing counts */
export type ExportLine = {
  operation: Operation;
} | {
  message: Message;
} | {
  end: ExportEnd;
};

/** The JSON of an export in `GET /exports`. */
export type ExportView = {
  attempts: number;
  created_at: Timestamp;
  id: Id;
  /** Spans or log records it carries. */
  items: number;
  last_error?: string | null;
  next_attempt_at?: null | Timestamp;
  operation_id: Id;
  /** When retrying began; retryable failures give up `outbox.export_retry_for` after it. */
  round_started_at: Timestamp;
  /** `traces` (one operation's span) or `logs` (one operation's messages of one commit). */
  signal: string;
  status: DeliveryStatus;
  updated_at: Timestamp;
  /** Where it was queued to go: `<endpoint>/v1/traces` or `<endpoint>/v1/logs`. */
  url: string;
};

export type ExportViewPage = {
  data: Array<ExportView>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

export type FacetValue = {
  /** Operations with this value among those matching the filters. */
  count: number;
  value: string;
};

/** The values of one field, most frequent first. */
export type Facets = {
  data: Array<FacetValue>;
  field: string;
  /** How many distinct values match (`data` holds at most `limit` of them). */
  total_values: number;
};

/** The answer of `/healthz` and `/readyz`. */
export type Health = {
  /** `ok` (healthz), `ready` or `stopping` (readyz). */
  status: string;
};

export type HttpRequest = {
  body?: null | Json;
  /** header name to value; a number or a list of strings is taken too (a list is joined with ", "); sensitive values are stored as [REDACTED] */
  headers?: {
    [key: string]: string | number | Array<string>;
  } | null;
  method: string;
  url: string;
};

export type HttpResponse = {
  body?: null | Json;
  /** header name to value; a number or a list of strings is taken too (a list is joined with ", "); sensitive values are stored as [REDACTED] */
  headers?: {
    [key: string]: string | number | Array<string>;
  } | null;
  status: number;
};

/** server-assigned ULID (26 characters): unique and sortable by creation time */
export type Id = string;

/** What one import command added and skipped (already stored). */
export type Imported = {
  messages_added: number;
  messages_skipped: number;
  operations_added: number;
  operations_skipped: number;
};

export type IngressView = {
  /** Where third parties post, with `{integration}` to fill in. */
  path: string;
  token: string;
};

/** Counts per time bucket, for charts. */
export type Insights = {
  buckets: Array<Bucket>;
  from: Timestamp;
  interval_ms: number;
  to: Timestamp;
  /** Operations counted over every bucket. */
  total: number;
};

export type IntegrationCount = {
  count: number;
  integration: string;
};

/** any JSON value but null */
export type Json = {
  [key: string]: unknown;
} | Array<unknown> | string | number | boolean;

export type Level = "debug" | "info" | "warn" | "error";

export type LoggedIn = {
  /** A viewer's environment. */
  environment?: string | null;
  expires_in_seconds: number;
  /** `admin`, or `environment` for a viewer signed in with an environment key. */
  principal: string;
  /** A viewer's key scope: `read` or `ingest+read`. */
  scope?: string | null;
};

export type Login = {
  /** The admin token, or an environment key with the `read` scope (`read` or `ingest+read`),
   * which signs in as a viewer of its environment. */
  token: string;
};

/** Deserialized only from `opslog export` files (`archive`); the API takes `ingest::input` types. */
export type Message = {
  created_at: Timestamp;
  duration_ms?: number | null;
  error?: null | ErrorInfo;
  id: Id;
  level: Level;
  message: string;
  meta?: null | Json;
  operation_id: Id;
  request?: null | HttpRequest;
  response?: null | HttpResponse;
  retry?: null | Retry;
  source: Source;
  type: MessageType;
};

/** A message found by `GET /messages`, with the operation it belongs to. */
export type MessageHit = Message & {
  operation: OperationSummary;
  snippet?: null | Snippet;
};

export type MessageHitPage = {
  data: Array<MessageHit>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

/** A message of one operation; with `snippets=true` and a `q`, where the query matched it. */
export type MessageInContext = Message & {
  snippet?: null | Snippet;
};

export type MessageInContextPage = {
  data: Array<MessageInContext>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

export type MessagePage = {
  data: Array<Message>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

export type MessageType = "log" | "http";

/** Nango's webhook toggles (its environment settings), under the same names, for every URL of an
 * environment (routes included), whatever their format. Each is on by default: opslog sends every
 * event unless told not to. */
export type NangoToggles = {
  /** An async action's end is reported. */
  on_async_action_completion?: boolean;
  /** A connection's creation (`auth:create_connection`, succeeded or failed) is reported. */
  on_auth_creation?: boolean;
  /** A failed refresh (`auth:refresh_token`, `auth:connection_test`) is reported. */
  on_auth_refresh_error?: boolean;
  /** A successful sync run is reported even for a model with nothing added, updated or deleted. */
  on_sync_completion_always?: boolean;
  /** A failed sync run is reported. */
  on_sync_error?: boolean;
};

export type NewMessage = {
  created_at?: null | Timestamp;
  duration_ms?: number | null;
  error?: null | ErrorInfo;
  level?: null | Level;
  message?: string | null;
  meta?: null | Json;
  operation_id?: null | Id;
  request?: null | HttpRequest;
  response?: null | HttpResponse;
  retry?: null | Retry;
  source?: null | Source;
  type?: null | MessageType;
};

export type NewOperation = {
  action?: string | null;
  /** For an action: it runs asynchronously, and its end fires `action.completed` (other types
   * keep the flag and fire nothing). */
  async?: boolean | null;
  auth_mode?: "OAUTH1" | "OAUTH2" | "OAUTH2_CC" | "BASIC" | "API_KEY" | "CUSTOM" | "APP" | "NONE" | "TBA" | "JWT" | "BILL" | "TWO_STEP" | "SIGNATURE" | "MCP_OAUTH2" | "MCP_OAUTH2_GENERIC" | "INSTALL_PLUGIN" | "AWS_SIGV4" | null;
  /** a sync run's checkpoints: the one it started from (`from`, null for a full sync) and the one it saved (`to`); flat objects of strings, numbers and booleans */
  checkpoints?: {
    from?: {
      [key: string]: string | number | boolean;
    } | null;
    to?: {
      [key: string]: string | number | boolean;
    } | null;
  } | null;
  connection_id?: string | null;
  end_user?: null | EndUser;
  ended_at?: null | Timestamp;
  error?: null | ErrorInfo;
  expires_at?: null | Timestamp;
  integration?: string | null;
  message?: string | null;
  messages?: Array<NewMessage & {
    /** leave it out: the messages belong to the new operation */
    operation_id?: null;
  }>;
  meta?: null | Json;
  output?: null | Json;
  provider?: string | null;
  records?: Array<RecordCount> | null;
  request?: null | HttpRequest;
  response?: null | HttpResponse;
  script?: string | null;
  started_at?: null | Timestamp;
  state?: null | OpState;
  sync_type?: null | SyncType;
  tags?: {
    [key: string]: string;
  } | null;
  trace_context?: null | TraceCarrier;
  type: OpType;
};

/** The body of `POST /views`. */
export type NewView = {
  /** 1-64 characters `a-z`, `0-9`, `_`, `-`; left out, one is made from the name. */
  id?: string | null;
  /** 1-100 characters, unique in the environment. */
  name: string;
  query?: ViewQuery;
};

/** Where a rule's notifications go: the environment's signed webhook URLs (today's `alert.*`
 * events), or one of its notifiers (`notifiers` of the config file and `PUT /settings`).
 * The declaration order is not stored (rules store the names). */
export type Notifier = "webhook" | "slack" | "pagerduty" | "email";

/** `PUT /settings` `notifiers`: a notifier left out is unchanged, `null` removes it, an object
 * replaces it. A secret sent back as `GET /settings` shows it (masked) keeps the stored one. */
export type NotifiersUpdate = {
  email?: null | EmailNotifier;
  pagerduty?: null | PagerDutyNotifier;
  slack?: null | SlackNotifier;
};

/** Where alert rules reach people besides the webhooks; secrets masked (sending a masked value
 * back keeps the stored one). */
export type NotifiersView = {
  email?: null | EmailNotifier;
  pagerduty?: null | PagerDutyNotifier;
  /** Notifiers the config file sets: change them there. */
  read_only: Array<string>;
  slack?: null | SlackNotifier;
};

/** Where an operation is in its lifecycle. */
export type OpState = "waiting" | "running" | "success" | "failed" | "timeout" | "cancelled";

/** What kind of high-level action an operation is. */
export type OpType = "sync" | "action" | "webhook" | "auth" | "proxy" | "deploy" | "admin" | "events" | "function";

/** Deserialized only from `opslog export` files (`archive`); the API takes `ingest::input` types. */
export type Operation = {
  action: string;
  /** An action started as async: its end fires `action.completed`, so a backend need not poll. */
  async?: boolean;
  auth_mode?: "OAUTH1" | "OAUTH2" | "OAUTH2_CC" | "BASIC" | "API_KEY" | "CUSTOM" | "APP" | "NONE" | "TBA" | "JWT" | "BILL" | "TWO_STEP" | "SIGNATURE" | "MCP_OAUTH2" | "MCP_OAUTH2_GENERIC" | "INSTALL_PLUGIN" | "AWS_SIGV4" | null;
  /** a sync run's checkpoints: the one it started from (`from`, null for a full sync) and the one it saved (`to`); flat objects of strings, numbers and booleans */
  checkpoints?: {
    from?: {
      [key: string]: string | number | boolean;
    } | null;
    to?: {
      [key: string]: string | number | boolean;
    } | null;
  } | null;
  connection_id?: string | null;
  created_at: Timestamp;
  duration_ms?: number | null;
  end_user?: null | EndUser;
  ended_at?: null | Timestamp;
  environment: string;
  error?: null | ErrorInfo;
  expires_at: Timestamp;
  id: Id;
  integration?: string | null;
  message: string;
  /** How many messages the operation holds; kept so pages can report a total without a scan. */
  message_count: number;
  meta?: null | Json;
  output?: null | Json;
  provider?: string | null;
  records?: Array<RecordCount> | null;
  request?: null | HttpRequest;
  response?: null | HttpResponse;
  script?: string | null;
  started_at?: null | Timestamp;
  state: OpState;
  sync_type?: null | SyncType;
  tags?: {
    [key: string]: string;
  };
  trace_context?: null | TraceContext;
  type: OpType;
  updated_at: Timestamp;
};

/** An operation found by `GET /operations`; with `snippets=true` and a `q`, where it matched. */
export type OperationHit = Operation & {
  snippet?: null | Snippet;
};

export type OperationHitPage = {
  data: Array<OperationHit>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

export type OperationPage = {
  data: Array<Operation>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

export type OperationPatch = {
  auth_mode?: "OAUTH1" | "OAUTH2" | "OAUTH2_CC" | "BASIC" | "API_KEY" | "CUSTOM" | "APP" | "NONE" | "TBA" | "JWT" | "BILL" | "TWO_STEP" | "SIGNATURE" | "MCP_OAUTH2" | "MCP_OAUTH2_GENERIC" | "INSTALL_PLUGIN" | "AWS_SIGV4" | null;
  /** a sync run's checkpoints: the one it started from (`from`, null for a full sync) and the one it saved (`to`); flat objects of strings, numbers and booleans */
  checkpoints?: {
    from?: {
      [key: string]: string | number | boolean;
    } | null;
    to?: {
      [key: string]: string | number | boolean;
    } | null;
  } | null;
  ended_at?: null | Timestamp;
  error?: null | ErrorInfo;
  message?: string | null;
  meta?: null | Json;
  output?: null | Json;
  records?: Array<RecordCount> | null;
  request?: null | HttpRequest;
  response?: null | HttpResponse;
  started_at?: null | Timestamp;
  state?: null | OpState;
  sync_type?: null | SyncType;
};

/** The operation a message hit belongs to, enough to show and filter it. */
export type OperationSummary = {
  action: string;
  connection_id?: string | null;
  id: Id;
  integration?: string | null;
  script?: string | null;
  state: OpState;
  type: OpType;
};

/** The end user's organization. */
export type Organization = {
  display_name?: string | null;
  id: string;
};

/** `PUT /settings` `otel`: a field left out is unchanged; `null` resets it to its default
 * (`endpoint: null` turns export off). `headers` replaces the whole map, except that a value
 * equal to the masked one `GET /settings` shows keeps the stored secret. */
export type OtelUpdate = {
  endpoint?: string | null;
  headers?: {
    [key: string]: string;
  } | null;
  logs?: boolean | null;
  max_events_per_span?: number | null;
  names?: null | SpanNames;
  resource_attributes?: {
    [key: string]: string;
  } | null;
  /** The `service.name` of exported spans: 1-256 characters, not blank (`null` resets it to
   * the default, `opslog`; an empty name is refused, since a collector would file the spans
   * under no service). */
  service_name?: string | null;
  timeout?: null | Duration1msTo5m;
  /** A trace viewer's URL with `{trace_id}`: the dashboard links an operation's trace with it. */
  trace_url?: string | null;
};

export type OtelView = {
  /** `null`: nothing is exported. */
  endpoint?: string | null;
  /** Values masked; sending a masked value back keeps the stored one. */
  headers: {
    [key: string]: string;
  };
  logs: boolean;
  max_events_per_span: number;
  names: SpanNames;
  /** Fields the config file sets (all of them when it has an otel table): change them there. */
  read_only: Array<string>;
  resource_attributes: {
    [key: string]: string;
  };
  service_name: string;
  timeout: Duration1msTo5m;
  /** The dashboard's trace link, with `{trace_id}`; `null`: none. */
  trace_url?: string | null;
};

/** A PagerDuty service's Events API v2 integration: `trigger` when a rule fires, `resolve`
 * with the same `dedup_key` when it resolves, so incidents close by themselves. */
export type PagerDutyNotifier = {
  /** The integration key of the service (shown masked). */
  routing_key: string;
  /** `payload.severity` of the events: critical, error (default), warning or info. */
  severity?: PagerDutySeverity;
  /** Where events are posted; default `https://events.pagerduty.com/v2/enqueue`. */
  url?: string | null;
};

/** The urgency PagerDuty gives the events (`payload.severity`).
 * The declaration order is part of the stored settings format: append, never reorder. */
export type PagerDutySeverity = "critical" | "error" | "warning" | "info";

/** One `name=value` of a query string (names may repeat). */
export type QueryParameter = {
  name: string;
  value: string;
};

/** The answer to a third party: its webhook is recorded. */
export type Received = {
  /** The `webhook:incoming` operation that records it. */
  operation_id: Id;
  /** Always `received`. */
  status: string;
};

export type RecordCount = {
  added?: number;
  deleted?: number;
  model: string;
  updated?: number;
};

export type Replayed = {
  ids: Array<Id>;
  /** Whether the window held more than one call requeues (call again for the rest). */
  limit_reached: boolean;
  requeued: number;
};

export type Retry = {
  attempt: number;
  max: number;
  waited_ms?: number;
};

/** The optional body of a rotation: the secret to sign with from now on. */
export type RotateBody = {
  /** An existing Nango signing key (16-256 visible ASCII characters; one starting `whsec_`
   * must be a valid Standard Webhooks secret) to sign with; left out, opslog issues a fresh
   * `whsec_` secret. */
  secret?: string | null;
};

/** The webhook secret in full (admin only). */
export type SecretReveal = {
  /** The rotated-out secret while it still signs. */
  previous_secret?: string | null;
  previous_secret_expires_at?: null | Timestamp;
  secret: string;
};

export type SeriesPoint = {
  count: number;
  start: Timestamp;
};

/** Whether the caller (a bearer token or the session cookie) is authenticated, and as whom. */
export type SessionStatus = {
  authenticated: boolean;
  /** The environment of an environment key. */
  environment?: string | null;
  /** `admin` or `environment`, when authenticated. */
  principal?: string | null;
  /** The scope of an environment key: `ingest`, `read` or `ingest+read`. */
  scope?: string | null;
};

/** `PUT /settings`: sections to change. A section left out is unchanged; inside a section, a
 * field left out is unchanged and `null` resets it to its default. */
export type SettingsUpdate = {
  /** Replaces every alert rule of the environment (`[]` removes them all); refused when the
   * config file sets them. */
  alerts?: Array<AlertRule> | null;
  notifiers?: null | NotifiersUpdate;
  otel?: null | OtelUpdate;
  webhooks?: null | WebhooksUpdate;
};

/** The JSON of `GET /settings`: every section, secrets masked, read-only fields listed. */
export type SettingsView = {
  alerts: AlertsView;
  environment: string;
  ingress: IngressView;
  notifiers: NotifiersView;
  otel: OtelView;
  webhooks: WebhooksView;
};

/** What a rule counts: one of the dashboard's signals. */
export type Signal = "sync_failures" | "action_errors" | "auth_failures" | "webhook_failures";

/** One signal over the range. */
export type SignalSummary = {
  count: number;
  /** `operations` or `messages`: what is counted, and which list shows them. */
  counts: string;
  /** The count over the equal period just before `from`. */
  previous_count: number;
  /** The range in `SERIES_POINTS` equal steps (none for an empty range). */
  series: Array<SeriesPoint>;
  signal: Signal;
  title: string;
  /** The integrations with the most, most first (at most 5). */
  top_integrations: Array<IntegrationCount>;
};

export type Signals = {
  data: Array<SignalSummary>;
  from: Timestamp;
  previous_from: Timestamp;
  to: Timestamp;
};

/** A Slack incoming webhook (`https://hooks.slack.com/services/…`): a secret URL. */
export type SlackNotifier = {
  /** The incoming webhook URL; its path is the secret (shown masked: sending the masked value
   * back keeps the stored one). */
  url: string;
};

/** A fragment of the matching text and where in it the query's terms are. */
export type Snippet = {
  /** `[start, end)` ranges of matched terms, in characters (Unicode scalar values) from the
   * start of `text`, ascending and not overlapping. */
  highlights: Array<Array<number>>;
  message_id?: null | Id;
  source: SnippetSource;
  /** At most 200 characters of the text around its first match, as stored (never markup). */
  text: string;
  /** Whether text was cut after `text` ends. */
  truncated_end: boolean;
  /** Whether text was cut before `text` starts. */
  truncated_start: boolean;
};

/** Where a snippet's text comes from. */
export type SnippetSource = "operation" | "message";

export type Source = "system" | "user";

/** W3C span id: 16 lowercase hex digits */
export type SpanId = string;

/** The span names and attribute keys of exported traces: opslog's (`sync.run`, `opslog.*`), or
 * Nango's (`nango.sync.run`, `nango.*`), for dashboards built on Nango's traces.
 * The declaration order is part of the stored settings format: append, never reorder. */
export type SpanNames = "opslog" | "nango";

/** How a sync run began (Nango's `SyncOperationType`): from no saved state (`full`, sent to
 * Nango receivers as `INITIAL`), from the previous run's state (`incremental`), or for one
 * external event (`webhook`). */
export type SyncType = "full" | "incremental" | "webhook";

/** RFC 3339 timestamp; answers are UTC with milliseconds */
export type Timestamp = string;

/** W3C Trace Context headers as JSON fields. A `traceparent` that is not valid is ignored (with
 * its `tracestate`), as the W3C specifies for the headers; other keys a propagator adds
 * (`baggage`) are ignored too. */
export type TraceCarrier = {
  /** `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`. */
  traceparent?: string | null;
  /** Vendor entries, passed on with the operation's span. */
  tracestate?: string | null;
};

/** The trace an operation belongs to: the caller's trace and span (the parent of the operation's
 * span), or, for an operation received over OTLP, the span it was itself. */
export type TraceContext = {
  parent_span_id?: null | SpanId;
  span_id?: null | SpanId;
  /** W3C trace flags (bit 0: sampled). */
  trace_flags?: number;
  trace_id: TraceId;
  /** The caller's `tracestate`, passed on unchanged. */
  tracestate?: string | null;
};

/** W3C trace id: 32 lowercase hex digits */
export type TraceId = string;

/** A view as the API shows it. */
export type View = {
  /** A built-in view (one of the four signals): it cannot be changed or deleted. */
  builtin: boolean;
  /** `operations` or `messages`: what the view lists, and what an alert rule on it counts. */
  counts: string;
  created_at?: null | Timestamp;
  /** `sync_failures`, `action_errors`, `auth_failures`, `webhook_failures` for the built-in
   * views; for a saved one, the id given when it was saved, else one made from its name. */
  id: string;
  name: string;
  query: ViewQuery;
  updated_at?: null | Timestamp;
};

export type ViewPage = {
  data: Array<View>;
  /** pass as `cursor` for the next page; null on the last page */
  next_cursor: string | null;
  /** how many match in all, over every page */
  total: number;
};

/** What a view searches: the query parameters of `GET /operations` (and `level`,
 * `message_type` of `GET /messages`), each filter a list (OR within it, AND across), plus the
 * Logs tab's range preset. A view with a `level` or `message_type` counts messages; any other
 * counts operations. */
export type ViewQuery = {
  connection_id?: Array<string>;
  end_user_id?: Array<string>;
  integration?: Array<string>;
  /** Message levels: the view lists (and counts) messages. */
  level?: Array<Level>;
  /** Message types (`log`, `http`): the view lists (and counts) messages. */
  message_type?: Array<MessageType>;
  /** The full-text query, as `q` of `GET /operations`. */
  q?: string | null;
  /** The Logs tab's time range preset when the view is opened: `5m`, `1h`, `24h`, `3d`, `7d`
   * or `14d` (absent: the tab's default). Alert rules count over their own window instead. */
  range?: string | null;
  script?: Array<string>;
  state?: Array<OpState>;
  tag?: Array<string>;
  type?: Array<string>;
};

/** The body of `PUT /views/{id}`: a field left out is unchanged. */
export type ViewUpdate = {
  name?: string | null;
  query?: null | ViewQuery;
};

/** The values the API's enums take, each list in the server's order. */
export type Vocabulary = {
  /** What the audit log records (`action` of `GET /v1/audit`). */
  audit_actions: Array<AuditAction>;
  /** Where a delivery or an export stands (`status`). */
  delivery_statuses: Array<DeliveryStatus>;
  /** Webhook events (`webhooks.events`, a delivery's `event`). */
  events: Array<EventType>;
  /** Message levels (`level`). */
  levels: Array<Level>;
  /** Message types (`message_type`, or `type` on one operation's messages). */
  message_types: Array<MessageType>;
  /** Where an alert rule's notifications go (its `notify`). */
  notifiers: Array<Notifier>;
  /** `notifiers.pagerduty.severity`. */
  pagerduty_severities: Array<PagerDutySeverity>;
  /** The query parameters of the read endpoints: what each takes and which endpoints take it. */
  query_parameters: Array<VocabularyParameter>;
  /** What a replay may send again (`status` of `/deliveries/replay`); the first is the default. */
  replay_statuses: Array<DeliveryStatus>;
  /** The signals (`/signals`, alert rules' `signal`). */
  signals: Array<VocabularySignal>;
  /** Span names and attribute keys of exported traces (`otel.names`). */
  span_names: Array<SpanNames>;
  /** Operation states (`state`). */
  states: Array<VocabularyState>;
  /** Operation types (`type`), each with the actions the server knows; an operation may carry
   * any other action. */
  types: Array<VocabularyType>;
  /** The range presets of a view's query (`query.range`). */
  view_ranges: Array<string>;
  /** Body formats of a webhook URL (`webhooks.format`). */
  webhook_formats: Array<WebhookFormat>;
};

/** One query parameter of one or more read endpoints (`crate::query_params`). */
export type VocabularyParameter = {
  description: string;
  /** The endpoints that take it, with this meaning. */
  endpoints: Array<Endpoint>;
  /** `GET /facets` counts its values (`field=<name>`). */
  facet: boolean;
  /** Selects by a field of the operation or message (a filter picker), rather than by time or
   * text, or shaping the answer. */
  filter: boolean;
  /** What values it takes: `one_of` (see `values`), `operation_type` (`type` or
   * `type:action`), `name` (1-256 characters), `tag` (`key:value`), `time` (RFC 3339), `text`
   * (a full-text query), `integer`, `boolean`, `cursor`, `message_id`, `duration` or `string`. */
  kind: string;
  /** What a person calls it. */
  label: string;
  name: string;
  /** May be given more than once: any of the values matches. */
  repeatable: boolean;
  required: boolean;
  /** The values of a `one_of`. */
  values?: Array<string> | null;
};

export type VocabularySignal = {
  /** `operations` or `messages`: what is counted, and the list (`GET /operations`,
   * `GET /messages`) that shows them. */
  counts: string;
  /** The query parameters of that list that select exactly what the signal counts. */
  filters: Array<QueryParameter>;
  signal: Signal;
  /** What people call it. */
  title: string;
};

export type VocabularyState = {
  state: OpState;
  /** Final: the operation has ended and its state can no longer change. */
  terminal: boolean;
};

/** An operation type and the actions the server gives a meaning to. */
export type VocabularyType = {
  /** The first is the default: what an operation of this type gets when its client names none. */
  actions: Array<string>;
  type: OpType;
};

/** The body shape a webhook URL receives: opslog's envelope (README "Webhooks"), or the bodies
 * Nango sends (`{"from":"nango","type":"sync",...}`), for receivers written for Nango.
 * The declaration order is part of the stored settings format: append, never reorder. */
export type WebhookFormat = "opslog" | "nango";

/** A route (Nango's per-connection webhook URL override): the events of the operations it matches
 * go to `url` instead of the environment's URLs (both of them, as in Nango). It matches an
 * operation when every criterion it gives holds: its connection is one of `connection_ids`, its
 * end user one of `end_user_ids`, and it carries every tag of `tags`. */
export type WebhookRoute = {
  connection_ids?: Array<string>;
  end_user_ids?: Array<string>;
  format?: null | WebhookFormat;
  tags?: {
    [key: string]: string;
  };
  url: string;
};

export type WebhooksUpdate = {
  allow_insecure_http?: boolean | null;
  events?: Array<EventType> | null;
  format?: null | WebhookFormat;
  /** One delay per attempt, the first usually `0s`. */
  retry_schedule?: Array<Duration0sTo7d> | null;
  /** Replaces every route (`null` or `[]` removes them). */
  routes?: Array<WebhookRoute> | null;
  secondary_format?: null | WebhookFormat;
  secondary_url?: string | null;
  timeout?: null | Duration1msTo5m;
  toggles?: null | NangoToggles;
  url?: string | null;
};

export type WebhooksView = {
  allow_insecure_http: boolean;
  events: Array<EventType>;
  /** The body shape `url` receives. */
  format: WebhookFormat;
  previous_secret_expires_at?: null | Timestamp;
  /** Fields the config file sets: change them there. */
  read_only: Array<string>;
  retry_schedule: Array<Duration0sTo7d>;
  rotation_grace: Duration0sTo7d;
  /** Operations whose events go to another URL instead (Nango's per-connection override). */
  routes: Array<WebhookRoute>;
  /** The body shape `secondary_url` receives. */
  secondary_format: WebhookFormat;
  secondary_url?: string | null;
  /** Masked; `GET /settings/webhook-secret` shows it to an admin. */
  secret: string;
  timeout: Duration1msTo5m;
  /** Nango's toggles: which events are sent at all. */
  toggles: NangoToggles;
  url?: string | null;
};
