/** The data contract of DESIGN.md, shared by every stage of the pipeline. */
export * from './attributes.ts';
export * from './tokens.ts';
export * from './attempt.ts';
export * from './rows.ts';
export * from './providers.ts';
