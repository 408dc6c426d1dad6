import type { InspectionEvent } from 'xstate';
import { registerTalosMachines } from './describers.ts';
import { createRecorder, type Recorder } from './recorder.ts';
import { startInspector } from './server.ts';
import { encodeTrace } from './trace.ts';

/**
 * A recorder that knows every Talos machine (drawings and safe describers) plus the inspector
 * page serving it: what `talos demo --inspect` and tests use. Pass `inspect` to the actors.
 */
export interface LiveInspector {
  url: string;
  recorder: Recorder;
  inspect: (event: InspectionEvent) => void;
  /** The run so far as a trace file (JSON Lines), to open later with `talos inspect --trace`. */
  trace(): string;
  close(): Promise<void>;
}

export async function startLiveInspector(options: { port?: number; host?: string } = {}): Promise<LiveInspector> {
  const recorder = registerTalosMachines(createRecorder());
  const inspector = await startInspector({ ...options, recorder });
  return {
    url: inspector.url,
    recorder,
    inspect: recorder.inspect,
    trace: () => encodeTrace({ format: 'talos-trace', v: 1, source: 'live' }, recorder.events()),
    close: () => inspector.close(),
  };
}
