import type { InspectionEvent } from 'xstate';
import { startTga, type TgaActor } from '../actors/tga/index.ts';
import { isReady } from '../machines/tga.machine.ts';
import { createCryptoProvider } from './crypto/index.ts';
import type { CryptoProvider, RandomSource } from './crypto/provider.ts';
import { createRecorder, type Recorder } from './inspect/recorder.ts';
import { startInspector, type Inspector } from './inspect/server.ts';
import { allMachines } from '../actors/machines.ts';

/**
 * The composition root: builds the services the actors need and starts the actor system,
 * whose root is the TGA. Everything effectful is created here and released on stop.
 */
export interface RuntimeConfig {
  /** 'node' (default, or $TALOS_CRYPTO) or 'noble'. */
  crypto?: 'node' | 'noble' | CryptoProvider;
  /** Replaces the OS random source (simulations run on a seeded one). */
  random?: RandomSource;
  /** XState's inspection hook: receives every actor, snapshot and event of the system. */
  inspect?: (event: InspectionEvent) => void;
  /** Serve the live inspector page on loopback (port 0 picks a free one). */
  inspector?: { port?: number; host?: string };
}

export interface Runtime {
  readonly crypto: CryptoProvider;
  /** The root actor (systemId 'tga'). */
  readonly tga: TgaActor;
  /** The inspector's address when `inspector` was configured. */
  readonly inspectorUrl?: string;
  /** True while the TGA runs and every child it owns is up. */
  ready(): boolean;
  /** Stops every actor and releases every resource; resolves when done. Idempotent. */
  stop(): Promise<void>;
}

export async function buildRuntime(config: RuntimeConfig = {}): Promise<Runtime> {
  const crypto =
    typeof config.crypto === 'object'
      ? config.crypto
      : createCryptoProvider({
          ...(config.crypto ? { name: config.crypto } : {}),
          ...(config.random ? { random: config.random } : {}),
        });
  const releasers: Array<() => void | Promise<void>> = [];
  const pending: Promise<void>[] = [];
  let recorder: Recorder | undefined;
  let inspector: Inspector | undefined;
  if (config.inspector) {
    recorder = createRecorder();
    inspector = await startInspector({ ...config.inspector, recorder, machines: allMachines() });
    releasers.push(() => inspector!.close());
  }
  const inspect = chainInspectors(recorder?.inspect, config.inspect);
  const tga = startTga(
    {
      release: () => {
        for (const r of releasers.splice(0).reverse()) pending.push(Promise.resolve(r()));
      },
    },
    inspect ? { inspect } : {},
  );
  let stopping: Promise<void> | undefined;
  return {
    crypto,
    tga,
    ...(inspector ? { inspectorUrl: inspector.url } : {}),
    ready: () => isReady(tga.getSnapshot()),
    stop() {
      stopping ??= (async () => {
        if (tga.getSnapshot().status === 'active') tga.send({ type: 'tga.stop' });
        await Promise.all(pending);
        tga.stop();
      })();
      return stopping;
    },
  };
}

function chainInspectors(
  ...hooks: Array<((event: InspectionEvent) => void) | undefined>
): ((event: InspectionEvent) => void) | undefined {
  const present = hooks.filter((h): h is (event: InspectionEvent) => void => h !== undefined);
  if (present.length <= 1) return present[0];
  return (event) => present.forEach((h) => h(event));
}
