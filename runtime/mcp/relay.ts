import type { AccessRequest } from '../capability/index.ts';
import { isPlainObject, type RpcNotification } from './jsonrpc.ts';

/**
 * What the gateway relays besides tools: the upstreams as the pipeline sees them (prompts,
 * resources, their notifications), how a prompt name or a resource URI is routed to one of
 * them, and the sessions that notifications not tied to a request go to.
 */

export type UpstreamCall = (
  method: string,
  params: Record<string, unknown> | undefined,
  signal?: AbortSignal,
  onProgress?: (progress: Record<string, unknown>) => void,
) => Promise<Record<string, unknown>>;

/**
 * An upstream's circuit breaker, asked before a call spends anything
 * (actors/upstream/circuit.ts): `refused` when it would not let the call through, with
 * `retryAfterMs` while it is open; otherwise the call goes, and releases its admission when its
 * forward ends (a half-open breaker's trial is held until then).
 */
export interface CircuitAdmission {
  refused?: { retryAfterMs?: number };
  release(): void;
}

/** One upstream, as the relay needs it (the upstream actor implements it). */
export interface RelayUpstream {
  readonly name: string;
  /** The capabilities the server declared at initialize (the last known). */
  capabilities(): Record<string, unknown>;
  /** Pinned, unchanged prompts (definitions as the server lists them). */
  prompts(): Record<string, unknown>[];
  /** A prompt by name: its definition, withheld because it drifted, or unknown. */
  prompt(name: string): Record<string, unknown> | 'drift' | undefined;
  /** The last resources/list or resources/templates/list read from the server. */
  listed(listing: 'resources' | 'templates'): Record<string, unknown>[];
  /** Reads that listing again from the server (every page). */
  relist(listing: 'resources' | 'templates'): Promise<void>;
  call: UpstreamCall;
  /** Asks its circuit breaker before a call spends anything. */
  admit?(): CircuitAdmission;
  /** Calls `listener` with every notification the server sends that agents may get. */
  onNotification(listener: (notification: RpcNotification) => void): () => void;
}

/** MCP logging levels, least severe first. */
export const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const isLogLevel = (v: unknown): v is LogLevel => typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);

/** The capability kinds the gateway relays, merged over the upstreams (initialize). */
export function mergedCapabilities(upstreams: RelayUpstream[]): Record<string, unknown> {
  const out: Record<string, Record<string, unknown>> = { tools: { listChanged: false } };
  for (const u of upstreams) {
    const caps = u.capabilities();
    for (const kind of ['tools', 'prompts', 'resources'] as const) {
      const c = caps[kind];
      if (!isPlainObject(c)) continue;
      const merged = (out[kind] ??= { listChanged: false });
      if (c.listChanged === true) merged.listChanged = true;
      if (kind === 'resources') merged.subscribe = merged.subscribe === true || c.subscribe === true;
    }
    for (const kind of ['logging', 'completions'] as const) if (isPlainObject(caps[kind])) out[kind] = {};
  }
  return out;
}

/**
 * A resource template's URI as a pattern: `{var}` matches one path segment's worth of
 * characters, the operator forms (`{+var}`, `{#var}`, `{/var}`, `{?var}`...) anything. Used
 * for routing only; authorization checks the concrete URI against the grant.
 */
export function templateMatches(template: string, uri: string): boolean {
  let re = '^';
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    if (open < 0) {
      re += escapeRe(template.slice(i));
      break;
    }
    const close = template.indexOf('}', open);
    if (close < 0) return false;
    re += escapeRe(template.slice(i, open));
    re += /^[+#./;?&]/.test(template.slice(open + 1)) ? '.*' : '[^/?#]*';
    i = close + 1;
  }
  return new RegExp(`${re}$`, 's').test(uri);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The first upstream that listed `uri`, else the first whose template matches it. */
export function routeResource(upstreams: RelayUpstream[], uri: string): RelayUpstream | undefined {
  for (const u of upstreams) if (u.listed('resources').some((r) => r.uri === uri)) return u;
  for (const u of upstreams) {
    if (u.listed('templates').some((t) => typeof t.uriTemplate === 'string' && (t.uriTemplate === uri || templateMatches(t.uriTemplate, uri)))) return u;
  }
  return undefined;
}

/** The first upstream (configured order) that offers the prompt; 'drift' if it is withheld there. */
export function routePrompt(upstreams: RelayUpstream[], name: string): { upstream: RelayUpstream; definition: Record<string, unknown> } | 'drift' | undefined {
  for (const u of upstreams) {
    const p = u.prompt(name);
    if (p === 'drift') return 'drift';
    if (p) return { upstream: u, definition: p };
  }
  return undefined;
}

/** The session side of the composition: who notifications go to. */
export interface RelaySession {
  sid: string;
  did: string;
  notify(notification: RpcNotification): void;
}

/** Re-checks, at delivery, that a token still allows what a notification reveals. */
export type Reauthorize = (token: string, did: string, request: AccessRequest) => Promise<boolean>;

/** Subscriptions (URIs) one session may hold at most. */
export const MAX_SUBSCRIPTIONS_PER_SESSION = 1024;

interface SessionState extends RelaySession {
  /** uri -> the token that authorized the subscription (re-checked at every update). */
  subscriptions: Map<string, { upstream: string; token: string }>;
  log?: { level: LogLevel; token: string };
}

/**
 * The attached sessions and what each asked to hear. Notifications from upstreams reach a
 * session only when it may see them, decided again at every delivery (a revoked or expired
 * token stops them): list_changed (which carries nothing) goes to every session;
 * resources/updated only to sessions subscribed to that URI on that upstream whose token still
 * allows reading it; logging messages only to sessions that set a level at or below the
 * message's and whose token still allows that logging/setLevel.
 */
export class SessionHub {
  private readonly sessions = new Map<string, SessionState>();

  constructor(private readonly reauthorize: Reauthorize) {}

  attach(session: RelaySession): void {
    this.sessions.set(session.sid, { ...session, subscriptions: new Map() });
  }

  detach(sid: string): void {
    this.sessions.delete(sid);
  }

  has(sid: string | undefined): sid is string {
    return sid !== undefined && this.sessions.has(sid);
  }

  canSubscribe(sid: string, uri: string): boolean {
    const s = this.sessions.get(sid);
    return s !== undefined && (s.subscriptions.has(uri) || s.subscriptions.size < MAX_SUBSCRIPTIONS_PER_SESSION);
  }

  /** Records a subscription (a detached session, or one that is full, records nothing). */
  subscribe(sid: string, upstream: string, uri: string, token: string): void {
    if (this.canSubscribe(sid, uri)) this.sessions.get(sid)!.subscriptions.set(uri, { upstream, token });
  }

  /** Drops a subscription; returns its upstream when no session holds that URI there any more. */
  unsubscribe(sid: string, uri: string): string | undefined {
    const sub = this.sessions.get(sid)?.subscriptions.get(uri);
    if (!sub) return undefined;
    this.sessions.get(sid)!.subscriptions.delete(uri);
    return this.subscribed(sub.upstream, uri) ? undefined : sub.upstream;
  }

  /** Every (upstream, uri) the session held that no other session holds. */
  orphans(sid: string): { upstream: string; uri: string }[] {
    const s = this.sessions.get(sid);
    if (!s) return [];
    const mine = [...s.subscriptions].map(([uri, { upstream }]) => ({ upstream, uri }));
    s.subscriptions.clear();
    return mine.filter(({ upstream, uri }) => !this.subscribed(upstream, uri));
  }

  private subscribed(upstream: string, uri: string): boolean {
    for (const s of this.sessions.values()) if (s.subscriptions.get(uri)?.upstream === upstream) return true;
    return false;
  }

  /** Sets the session's logging level; returns the most verbose level any session asked for. */
  setLevel(sid: string, level: LogLevel, token: string): LogLevel {
    const s = this.sessions.get(sid);
    if (s) s.log = { level, token };
    let min = LOG_LEVELS.indexOf(level);
    for (const o of this.sessions.values()) if (o.log) min = Math.min(min, LOG_LEVELS.indexOf(o.log.level));
    return LOG_LEVELS[min]!;
  }

  /** Delivers one upstream notification to the sessions that may see it. */
  async deliver(upstream: string, n: RpcNotification): Promise<void> {
    const targets = [...this.sessions.values()];
    if (n.method.endsWith('/list_changed')) {
      for (const s of targets) s.notify({ jsonrpc: '2.0', method: n.method });
      return;
    }
    if (n.method === 'notifications/resources/updated') {
      const uri = n.params?.uri;
      if (typeof uri !== 'string') return;
      await Promise.all(
        targets.map(async (s) => {
          const sub = s.subscriptions.get(uri);
          if (sub?.upstream !== upstream) return;
          if (await this.reauthorize(sub.token, s.did, { method: 'resources/read', args: { uri } })) {
            s.notify({ jsonrpc: '2.0', method: n.method, params: { uri } });
          } else s.subscriptions.delete(uri); // no longer allowed: the subscription ends here
        }),
      );
      return;
    }
    if (n.method === 'notifications/message') {
      const level = n.params?.level;
      if (!isLogLevel(level)) return;
      const params: Record<string, unknown> = { level, data: n.params?.data ?? null };
      if (typeof n.params?.logger === 'string') params.logger = n.params.logger;
      await Promise.all(
        targets.map(async (s) => {
          const log = s.log;
          if (!log || LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(log.level)) return;
          if (await this.reauthorize(log.token, s.did, { method: 'logging/setLevel', args: { level: log.level } })) {
            s.notify({ jsonrpc: '2.0', method: n.method, params });
          }
        }),
      );
    }
  }
}
