// The public surface of policies/: load a policy file, compile it, ask it for decisions.
export { DEFAULT_DENY_RULE_ID } from './types.js';
export type { Decision, Policy, RequestFacts, Rule, RuleAction, SourceLocation } from './types.js';
export { policyFileSchema, policyJsonSchema, ruleFileSchema } from './schema.js';
export type { PolicyFile, RuleFile } from './schema.js';
export { allowHostRule, loadPolicyFile, loadPolicyFileSync, parsePolicy } from './loader.js';
export { compilePolicy } from './match.js';
export type { CompiledPolicy } from './match.js';
export { hostMatchesPattern, isIpLiteral, normalizeHost, parseHostPattern } from './host.js';
export type { HostPattern } from './host.js';
export { compilePathGlob, normalizePath, normalizePathGlob, pathMatchesGlob } from './path.js';
export type { NormalizedPath, PathGlob } from './path.js';
