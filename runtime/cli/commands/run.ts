import { resolve } from 'node:path';
import { loadConfig } from '../../config/config.ts';
import type { DriftMode } from '../../drift/index.ts';
import { createRuntime } from '../../index.ts';
import type { Runtime } from '../../system.ts';
import { optionalString, output, requireString, UsageError, type CliCommand, type CliContext } from '../command.ts';

/**
 * `talos run`: the whole runtime under its governance agent (runtime/system.ts): the gateway,
 * the auditor, the upstreams and the job runner supervised by the TGA, with circuit breakers,
 * the drift monitor re-reading the configuration file, and the /healthz /readyz /metrics probes.
 */
export interface RunOptions {
  healthPort?: number;
  sessionStore?: string;
  otlpUrl?: string;
  drift?: DriftMode;
}

function port(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new UsageError(`--${name} must be a port number`);
  return Number(value);
}

/** Runs until SIGINT/SIGTERM (or `until` resolves, for tests); resolves with the running runtime. */
export async function serveRuntime(configPath: string, ctx: CliContext, options: RunOptions = {}, until?: Promise<void>): Promise<Runtime> {
  const talos = loadConfig(configPath, ctx.env);
  for (const o of talos.overrides) ctx.stderr(`config: ${o}\n`);
  const runtime = await createRuntime({
    talos,
    declared: configPath,
    env: ctx.env,
    log: (l) => ctx.stderr(`${l}\n`),
    ...(options.healthPort !== undefined ? { health: { port: options.healthPort } } : {}),
    ...(options.sessionStore ? { sessionStorePath: resolve(ctx.cwd, options.sessionStore) } : {}),
    ...(options.otlpUrl ? { telemetry: { otlpUrl: options.otlpUrl } } : {}),
    ...(options.drift ? { drift: { policy: { config: options.drift, tools: options.drift } } } : {}),
  });
  output(
    ctx,
    { did: runtime.did, url: runtime.gatewayUrl, health: runtime.healthUrl ?? null, children: Object.keys(runtime.tga.getSnapshot().context.children) },
    () => `talos ${runtime.did} serving on ${runtime.gatewayUrl}${runtime.healthUrl ? `; probes on ${runtime.healthUrl}` : ''}`,
  );
  const stopped =
    until ??
    new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
  void stopped.then(() => runtime.stop());
  return runtime;
}

export const runCommands: CliCommand[] = [
  {
    name: 'run',
    summary: 'run the gateway under the governance agent: supervision, breakers, drift checks, jobs, health probes',
    usage: 'talos run --config talos.config.json [--health-port N] [--session-store FILE] [--otlp URL] [--drift report|reconcile]',
    examples: [
      'talos run --config talos.config.json --health-port 9464',
      'TALOS_KEK=k1:BASE64URL talos run -c talos.config.json --session-store sessions.sqlite --drift reconcile',
    ],
    options: [
      { name: 'config', short: 'c', type: 'string', description: 'the configuration file (also the declared state for drift checks)', default: 'talos.config.json' },
      { name: 'health-port', type: 'string', description: 'serve /healthz, /readyz and /metrics on this loopback port (0: any free one)' },
      { name: 'session-store', type: 'string', description: 'SQLite file for sessions and prekeys (default: in memory)' },
      { name: 'otlp', type: 'string', description: 'export traces to this OTLP/HTTP endpoint (…/v1/traces)' },
      { name: 'drift', type: 'string', description: 'what to do with drift: report (default) or reconcile' },
    ],
    async run({ options }, ctx) {
      const drift = optionalString(options, 'drift');
      if (drift !== undefined && drift !== 'report' && drift !== 'reconcile') throw new UsageError('--drift must be report or reconcile');
      const healthPort = port(optionalString(options, 'health-port'), 'health-port');
      const sessionStore = optionalString(options, 'session-store');
      const otlpUrl = optionalString(options, 'otlp');
      const runtime = await serveRuntime(resolve(ctx.cwd, requireString(options, 'config')), ctx, {
        ...(healthPort !== undefined ? { healthPort } : {}),
        ...(sessionStore ? { sessionStore } : {}),
        ...(otlpUrl ? { otlpUrl } : {}),
        ...(drift ? { drift } : {}),
      });
      await new Promise<void>((done) => runtime.tga.subscribe({ complete: done }));
      await runtime.stop();
      return 0;
    },
  },
];
