import type { RoutedTool, ToolRouter } from '../../runtime/mcp/pipeline.ts';
import type { UpstreamActor } from '../upstream/index.ts';

type UpstreamCall = (method: string, params: Record<string, unknown> | undefined, signal?: AbortSignal, onProgress?: (progress: Record<string, unknown>) => void) => Promise<Record<string, unknown>>;

/**
 * Routes tool names to upstream actors; on a name offered by two upstreams the first configured
 * wins. `upstreams` may be a getter (a supervisor's current children); `around` wraps every
 * call (the gateway traces it as a span).
 */
export class UpstreamRouter implements ToolRouter {
  private readonly current: () => UpstreamActor[];
  constructor(
    upstreams: UpstreamActor[] | (() => UpstreamActor[]),
    private readonly around?: (upstream: UpstreamActor, tool: string, call: () => Promise<Record<string, unknown>>) => Promise<Record<string, unknown>>,
  ) {
    this.current = typeof upstreams === 'function' ? upstreams : () => upstreams;
  }
  tools(): RoutedTool[] {
    const seen = new Set<string>();
    const out: RoutedTool[] = [];
    for (const u of this.current()) {
      for (const t of u.tools()) {
        if (seen.has(t.name)) continue;
        seen.add(t.name);
        out.push(t as RoutedTool);
      }
    }
    return out;
  }
  /** Prompts, resources, completion, logging and notifications go to the upstreams themselves. */
  upstreams(): UpstreamActor[] {
    return this.current();
  }
  resolve(name: string): ReturnType<ToolRouter['resolve']> {
    for (const u of this.current()) {
      const t = u.tool(name);
      if (t) {
        const call: UpstreamCall = this.around
          ? (method, params, signal, onProgress) => this.around!(u, name, () => u.call(method, params, signal, onProgress))
          : (method, params, signal, onProgress) => u.call(method, params, signal, onProgress);
        return { tool: t as RoutedTool, call, admit: u.admit };
      }
      if (u.isDrifted(name)) return 'drift';
    }
    return undefined;
  }
}
