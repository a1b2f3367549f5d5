/** Price catalog and pricing engine: pure, exact, shared by the SDK's cost preview and the consumers. */
export * from './decimal.ts';
export * from './catalog.ts';
export * from './engine.ts';
export * from './providers.ts';
export * from './litellm.ts';
