// Bounds the distinct names each wildcard rule admits in one gateway's life. A name a wildcard
// admits costs one upstream DNS lookup when the program connects to it, and that lookup reaches
// the zone's authoritative servers: each new name is a message to whoever runs the zone.
import { isIpLiteral, matchHostPattern, normalizeHost, parseHostPattern, type HostPattern } from '../../policies/host.js';
import type { Policy } from '../../policies/types.js';

/** Distinct names one wildcard rule may admit per gateway run unless the policy says otherwise. */
export const DEFAULT_MAX_NAMES_PER_WILDCARD = 300;
/** Refused names remembered (for counting distinct names); beyond it each refusal counts as new. */
const MAX_REMEMBERED_REFUSALS = 4096;

/** The wildcard rule that admits a name, and where that rule stands against its cap. */
export interface WildcardNameVerdict {
  /** The rule's id. */
  readonly rule: string;
  /** The rule's host pattern ("*.example.test", "*"). */
  readonly pattern: string;
  /** Distinct names seen under the rule so far, refused ones included. */
  readonly names: number;
  readonly cap: number;
  /** The first time this name was seen under the rule (admitted or refused). */
  readonly firstSeen: boolean;
  /** Present when the name is refused: the cap is reached and the name is new. */
  readonly refusal?: string;
}

interface WildcardRule {
  readonly id: string;
  readonly text: string;
  readonly pattern: HostPattern;
}

interface CompiledHostRules {
  /** Allow rules that name exactly one host: names they cover are not capped. */
  readonly exact: ReadonlySet<string>;
  readonly wildcards: readonly WildcardRule[];
}

interface RuleNames {
  readonly admitted: Set<string>;
  readonly refused: Set<string>;
  /** Refusals beyond MAX_REMEMBERED_REFUSALS, each counted as a new name. */
  refusedUnremembered: number;
}

export class WildcardNameCap {
  private readonly compiled = new WeakMap<Policy, CompiledHostRules>();
  private readonly byRule = new Map<string, RuleNames>();
  private remembered = 0;

  /** `currentPolicy` is read at every check, so a reload's rules and cap apply to the next name. */
  constructor(private readonly currentPolicy: () => Policy) {}

  /**
   * Where `host` stands under the wildcard rule that admits it, recording it; null when no
   * wildcard is what admits it (an allow rule names it exactly, or no allow rule matches).
   * Call it only for a name the policy admits.
   */
  check(host: string): WildcardNameVerdict | null {
    const name = normalizeHost(host);
    if (name === null || isIpLiteral(name)) return null;
    const policy = this.currentPolicy();
    const rules = this.rulesOf(policy);
    if (rules.exact.has(name)) return null;
    const rule = rules.wildcards.find((candidate) => matchHostPattern(candidate.pattern, name, null));
    if (rule === undefined) return null;
    const cap = policy.dns?.maxNamesPerWildcard ?? DEFAULT_MAX_NAMES_PER_WILDCARD;
    const key = `${rule.id}\u0000${rule.text}`;
    let names = this.byRule.get(key);
    if (names === undefined) {
      names = { admitted: new Set(), refused: new Set(), refusedUnremembered: 0 };
      this.byRule.set(key, names);
    }
    const count = () => names.admitted.size + names.refused.size + names.refusedUnremembered;
    if (names.admitted.has(name)) return { rule: rule.id, pattern: rule.text, names: count(), cap, firstSeen: false };
    if (names.admitted.size < cap) {
      // SECURITY: the admitted set never holds more than `cap` names per rule, so memory is bounded too.
      names.admitted.add(name);
      return { rule: rule.id, pattern: rule.text, names: count(), cap, firstSeen: true };
    }
    let firstSeen = false;
    if (!names.refused.has(name)) {
      firstSeen = true;
      if (this.remembered < MAX_REMEMBERED_REFUSALS) {
        names.refused.add(name);
        this.remembered++;
      } else {
        names.refusedUnremembered++;
      }
    }
    const seen = count();
    return {
      rule: rule.id,
      pattern: rule.text,
      names: seen,
      cap,
      firstSeen,
      refusal: `rule ${rule.id} has seen ${seen} names under ${rule.text}; the cap is ${cap} (policy dns.maxNamesPerWildcard)`,
    };
  }

  private rulesOf(policy: Policy): CompiledHostRules {
    let rules = this.compiled.get(policy);
    if (rules !== undefined) return rules;
    const exact = new Set<string>();
    const wildcards: WildcardRule[] = [];
    for (const rule of policy.rules) {
      if (rule.action !== 'allow') continue;
      const parsed = parseHostPattern(rule.host);
      if ('error' in parsed) continue;
      if (parsed.pattern.kind === 'name') exact.add(parsed.pattern.name);
      else if (parsed.pattern.kind === 'subdomains' || parsed.pattern.kind === 'any-name') wildcards.push({ id: rule.id, text: parsed.text, pattern: parsed.pattern });
    }
    rules = { exact, wildcards };
    this.compiled.set(policy, rules);
    return rules;
  }
}
