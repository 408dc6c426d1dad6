export * from './tracing.ts';
export * from './metrics.ts';
export * from './health-server.ts';
export { RestartBudget } from './restart-budget.ts';
export * from './checks.ts';
export * from './breakers.ts';
