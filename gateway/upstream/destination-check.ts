// The gateway's side of the private-destination check: the policy in force and the addresses of
// the host's own interfaces, handed to the pure check (policies/private-destinations.ts) for each
// address the upstream resolver is about to give a connection.
import os from 'node:os';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { parseIpAddress, type IpAddress } from '../../policies/host.js';
import { checkDestinationAddress } from '../../policies/private-destinations.js';
import type { Policy } from '../../policies/types.js';

/** Interfaces gain and lose addresses (DHCP, VPNs); a connection sees a list at most this old. */
const OWN_ADDRESSES_MAX_AGE_MS = 1000;

export class DestinationCheck {
  private ownAddresses: readonly IpAddress[] = [];
  private ownAddressesReadAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly currentPolicy: () => Policy,
    private readonly interfaceAddresses: () => ReturnType<typeof os.networkInterfaces> = () => os.networkInterfaces(),
  ) {}

  /**
   * Null when the gateway may connect to `address` (an IP it resolved for an allowed name); else
   * the refusal, an SrtGwError(UPSTREAM_PRIVATE_DESTINATION) whose message is safe to show the client.
   */
  refusal(address: string): SrtGwError | null {
    // SECURITY: a name a rule allows is not an address a rule allows: loopback, the LAN, cloud
    // metadata and the gateway host stay out of reach unless the policy opens them —
    // test/e2e/private-destinations.test.ts
    const verdict = checkDestinationAddress(address, { policy: this.currentPolicy(), ownAddresses: this.own() });
    return verdict.allowed ? null : new SrtGwError(ErrorCodes.UPSTREAM_PRIVATE_DESTINATION, verdict.reason);
  }

  private own(): readonly IpAddress[] {
    const now = Date.now();
    if (now - this.ownAddressesReadAt >= OWN_ADDRESSES_MAX_AGE_MS) {
      const addresses: IpAddress[] = [];
      for (const list of Object.values(this.interfaceAddresses())) {
        for (const entry of list ?? []) {
          const parsed = parseIpAddress(entry.address.replace(/%.*$/, ''));
          if (parsed !== null) addresses.push(parsed);
        }
      }
      this.ownAddresses = addresses;
      this.ownAddressesReadAt = now;
    }
    return this.ownAddresses;
  }
}
