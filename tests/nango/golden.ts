// One golden body per Nango webhook type, built from Nango's own type definitions
// (@nangohq/types): each is checked by tsc --strict against `Full<T>`, Nango's type with every
// optional key made required, so a golden names every key Nango's type defines. check.mjs compares
// what opslog delivered with these key by key (tests/it/nango.rs names the golden of each body).
//
// The values are those of the scenario tests/it/nango.rs plays. A value written `<...>` is one the
// run decides (a timestamp, an id): only its type is compared.
import type {
    NangoAsyncActionWebhookBody,
    NangoAuthWebhookBodyError,
    NangoAuthWebhookBodySuccess,
    NangoForwardWebhookBody,
    NangoSyncWebhookBodyError,
    NangoSyncWebhookBodySuccess,
    SyncErrorPayload
} from '@nangohq/types';

/** `T` with every optional key required, at every level (unions and arrays kept). */
type Full<T> = T extends unknown[] ? T : T extends object ? { [K in keyof T]-?: Full<Exclude<T[K], undefined>> } : T;

const TIMESTAMP = '<timestamp>';

export const golden = {
    sync_success: {
        from: 'nango',
        type: 'sync',
        connectionId: 'acme',
        providerConfigKey: 'github',
        syncName: 'issues',
        syncVariant: 'base',
        model: 'Issue',
        checkpoints: { from: { cursor: 'c3', page: 3 }, to: { cursor: 'c4', done: true, page: 4 } },
        syncType: 'INCREMENTAL',
        success: true,
        modifiedAfter: TIMESTAMP,
        responseResults: { added: 3, updated: 1, deleted: 2 },
        queryTimeStamp: TIMESTAMP
    } satisfies Full<NangoSyncWebhookBodySuccess>,
    sync_error: {
        from: 'nango',
        type: 'sync',
        connectionId: 'acme',
        providerConfigKey: 'github',
        syncName: 'issues',
        syncVariant: 'base',
        model: 'Issue,Comment',
        checkpoints: { from: null, to: null },
        syncType: 'INITIAL',
        success: false,
        // `additional_properties` is the runner's own extra error data; opslog's error has none.
        error: { type: 'rate_limit', description: 'rate limited', payload: { retry_after: 30 } } satisfies Full<Omit<SyncErrorPayload, 'additional_properties'>>,
        startedAt: TIMESTAMP,
        failedAt: TIMESTAMP
    } satisfies Omit<Full<NangoSyncWebhookBodyError>, 'error'> & { error: SyncErrorPayload },
    auth_creation: {
        from: 'nango',
        type: 'auth',
        connectionId: 'acme',
        authMode: 'OAUTH2',
        providerConfigKey: 'github-prod',
        provider: 'github',
        environment: 'prod',
        operation: 'creation',
        tags: {
            end_user_display_name: 'Ada',
            end_user_email: 'ada@example.com',
            end_user_id: 'u-7',
            organization_display_name: 'Acme',
            organization_id: 'org-1',
            plan: 'pro',
            region: 'eu'
        },
        endUser: { endUserId: 'u-7', organizationId: 'org-1', endUserEmail: 'ada@example.com', tags: { plan: 'pro', region: 'eu' } },
        success: true
    } satisfies Full<NangoAuthWebhookBodySuccess>,
    auth_refresh_error: {
        from: 'nango',
        type: 'auth',
        connectionId: 'acme',
        authMode: 'OAUTH2',
        providerConfigKey: 'github-prod',
        provider: 'github',
        environment: 'prod',
        operation: 'refresh',
        // A connection without an end user or tags: Nango leaves `tags` and `endUser` out.
        success: false,
        error: { type: 'refresh_failed', description: 'invalid_grant', payload: { status: 400 } }
    } satisfies Omit<Full<NangoAuthWebhookBodyError>, 'tags' | 'endUser'>,
    forward: {
        from: 'slack',
        type: 'forward',
        connectionId: 'acme',
        providerConfigKey: 'slack-prod',
        payload: { event: { type: 'message', ts: 1 }, n: 1, team_id: 'T1' }
    } satisfies Full<NangoForwardWebhookBody>,
    async_action: {
        from: 'nango',
        type: 'async_action',
        connectionId: 'acme',
        providerConfigKey: 'github',
        payload: { id: '<id>', statusUrl: '<statusUrl>' }
    } satisfies Full<NangoAsyncActionWebhookBody>
};
