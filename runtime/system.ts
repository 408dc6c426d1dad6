import type { InspectionEvent } from 'xstate';
import { startTga, type TgaActor } from '../actors/tga/index.ts';
import { isReady } from '../machines/tga.machine.ts';
import { createCryptoProvider } from './crypto/index.ts';
import type { CryptoProvider, RandomSource } from './crypto/provider.ts';

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
}

export interface Runtime {
  readonly crypto: CryptoProvider;
  /** The root actor (systemId 'tga'). */
  readonly tga: TgaActor;
  /** True while the TGA runs and every child it owns is up. */
  ready(): boolean;
  /** Stops every actor and releases every resource; resolves when done. Idempotent. */
  stop(): Promise<void>;
}

export function buildRuntime(config: RuntimeConfig = {}): Runtime {
  const crypto =
    typeof config.crypto === 'object'
      ? config.crypto
      : createCryptoProvider({
          ...(config.crypto ? { name: config.crypto } : {}),
          ...(config.random ? { random: config.random } : {}),
        });
  const releasers: Array<() => void | Promise<void>> = [];
  const pending: Promise<void>[] = [];
  const tga = startTga(
    {
      release: () => {
        for (const r of releasers.splice(0).reverse()) pending.push(Promise.resolve(r()));
      },
    },
    config.inspect ? { inspect: config.inspect } : {},
  );
  let stopping: Promise<void> | undefined;
  return {
    crypto,
    tga,
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
