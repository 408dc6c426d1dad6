import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private redis-server for one test file: a free port on 127.0.0.1, its own temporary
 * directory, nothing shared with other tests. `REDIS_URL` is honoured instead when set
 * (then `stop` leaves the server alone and kill/restart refuse), unless `owned` is asked for.
 */
export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL when `hard`), keeping its data directory. */
  kill(hard?: boolean): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface TestRedisOptions {
  appendonly?: boolean;
  /** Always start a private server, even when REDIS_URL is set (tests that kill and restart it). */
  owned?: boolean;
}

export async function startTestRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const external = options.owned ? undefined : process.env.REDIS_URL;
  if (external) {
    return {
      url: external,
      port: Number(new URL(external).port || 6379),
      kill: async () => {
        throw new Error('cannot kill an external REDIS_URL server');
      },
      restart: async () => {
        throw new Error('cannot restart an external REDIS_URL server');
      },
      stop: async () => {},
    };
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'talos-redis-'));
  let child: ChildProcess | undefined;

  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const args = [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
        '--appendonly', options.appendonly ? 'yes' : 'no', '--appendfsync', 'always',
        '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning',
      ];
      const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let output = '';
      const onData = (d: Buffer) => {
        output += d.toString();
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('error', reject);
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
      // Poll until it accepts connections.
      const started = Date.now();
      const probe = () => {
        const sock = connect(port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          proc.removeAllListeners('exit');
          resolve();
        });
        sock.once('error', () => {
          sock.destroy();
          if (Date.now() - started > 10_000) reject(new Error(`redis-server did not start: ${output}`));
          else setTimeout(probe, 20);
        });
      };
      probe();
    });

  const kill = async (hard = false) => {
    const proc = child;
    // A process that already exited has an exit code, or a signal code when it was killed.
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    });
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    stop: async () => {
      await kill(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

