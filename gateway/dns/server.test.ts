// startDnsServer: UDP and TCP on one port, a taken port reported as SRTGW_LISTEN_FAILED, IPv6 too.
import { describe, expect, it } from 'vitest';
import type { DnsAdmission } from './responder.js';
import { startDnsServer } from './server.js';

const admission: DnsAdmission = { couldAllowHost: (host) => host === 'api.example.test' };

describe('startDnsServer', () => {
  it('reports a port that is taken as SRTGW_LISTEN_FAILED', async () => {
    const first = await startDnsServer({ host: '127.0.0.1', port: 0, admission });
    try {
      await expect(startDnsServer({ host: '127.0.0.1', port: first.address.udp.port, admission })).rejects.toMatchObject({ code: 'SRTGW_LISTEN_FAILED' });
    } finally {
      await first.close();
      await first.close(); // safe twice
    }
  });

  it('binds IPv6 loopback too', async () => {
    const v6 = await startDnsServer({ host: '::1', port: 0, admission });
    expect(v6.address.udp.family).toBe('IPv6');
    expect(v6.address.tcp.port).toBe(v6.address.udp.port);
    await v6.close();
  });
});
