import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CA_CERT_FILE, CA_KEY_FILE, defaultCaDir } from './paths.js';

describe('defaultCaDir', () => {
  it('uses SRT_GW_CA_DIR when set', () => {
    expect(defaultCaDir({ SRT_GW_CA_DIR: '/var/lib/srt-gw/ca' })).toBe('/var/lib/srt-gw/ca');
  });

  it('falls back to ~/.config/srt-gw/ca', () => {
    expect(defaultCaDir({})).toBe(path.join(os.homedir(), '.config', 'srt-gw', 'ca'));
    expect(defaultCaDir({ SRT_GW_CA_DIR: '' })).toBe(path.join(os.homedir(), '.config', 'srt-gw', 'ca'));
  });

  it('names the files ca.pem and ca-key.pem', () => {
    expect([CA_CERT_FILE, CA_KEY_FILE]).toEqual(['ca.pem', 'ca-key.pem']);
  });
});
