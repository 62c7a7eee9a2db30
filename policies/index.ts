// The public surface of policies/: load a policy file, compile it, ask it for decisions.
export { DEFAULT_DENY_RULE_ID } from './types.js';
export type {
  CredentialAction,
  CredentialLocation,
  CredentialRule,
  Decision,
  EgressBudget,
  ExtendedSource,
  FilesystemPathEntry,
  FilesystemPolicy,
  FilesystemPolicyKey,
  Policy,
  PolicyOrigin,
  PrivateDestinationEntry,
  RequestFacts,
  Rule,
  RuleAction,
  SecretSource,
  SourceLocation,
} from './types.js';
export { filesystemFileSchema, filesystemPathProblem, policyFileSchema, policyJsonSchema, ruleFileSchema } from './schema.js';
export type { FilesystemFile, PolicyFile, RuleFile } from './schema.js';
export { allowHostRule, loadPolicyFile, loadPolicyFileSync, parsePolicy, policyFiles } from './loader.js';
export type { ParsePolicyOptions } from './loader.js';
export { MAX_EXTENDS_DEPTH } from './extends.js';
export { presetNames } from './presets.js';
export { renderShownPolicy, showPolicy } from './show.js';
export type { ShownPolicy } from './show.js';
export { compilePolicy } from './match.js';
export type { CompiledPolicy } from './match.js';
export { hostMatchesPattern, isIpLiteral, normalizeHost, parseHostPattern } from './host.js';
export type { HostPattern } from './host.js';
export { compilePathGlob, normalizePath, normalizePathGlob, pathMatchesGlob } from './path.js';
export type { NormalizedPath, PathGlob } from './path.js';
export { formatFinding, lintPolicy } from './lint.js';
export type { Finding, FindingSeverity, LintEnvironment } from './lint.js';
export { credentialPlaceholders, credentialSecretFiles, describeBudget, describeCredentialRule, placeholderFor } from './credentials.js';
export { applyCredentials } from './credential-rewrite.js';
export type { CredentialOutcome, CredentialStepResult, MaskPair, ResolvedCredential } from './credential-rewrite.js';
export { formatByteSize, parseByteSize } from './byte-size.js';
export { explainRequest, parseRequestText, parseRequestUrl, renderExplanation } from './explain.js';
export type { Explanation, RequestLine, RuleVerdict } from './explain.js';
export { parseDecisionTable, renderResults, runDecisionTable } from './decision-table.js';
export type { CaseResult, DecisionCase, DecisionTable } from './decision-table.js';
export { importSrtSettings, importSrtSettingsText, renderSrtImport } from './srt-settings.js';
export type { ImportedPolicy, ImportedRule, SrtImport } from './srt-settings.js';
