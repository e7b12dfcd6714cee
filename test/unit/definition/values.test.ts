import { describe, expect, it } from 'vitest';
import { cidrsOverlap, isIpv4Network, isSafeUrl } from '../../../src/definition/values.js';

describe('value validators', () => {
  it.each([
    ['10.10.0.0/16', true],
    ['10.10.1.0/16', false],
    ['0.0.0.0/0', true],
    ['256.0.0.0/8', false],
    ['10.0.0.0/33', false],
    ['10.0.0.0', false],
    ['10.0.0.0/8; reboot', false],
  ])('CIDR %j valid=%s', (cidr, valid) => expect(isIpv4Network(cidr)).toBe(valid));

  it('detects overlapping networks', () => {
    expect(cidrsOverlap('10.42.0.0/16', '10.43.0.0/16')).toBe(false);
    expect(cidrsOverlap('10.0.0.0/8', '10.43.0.0/16')).toBe(true);
    expect(cidrsOverlap('10.43.128.0/17', '10.43.0.0/16')).toBe(true);
  });

  it.each([
    ['https://get.helm.sh', true],
    ['http://127.0.0.1:8080/k3s', true],
    ['ftp://example.com', false],
    ['https://user:pw@example.com', false],
    ['https://example.com/$(id)', false],
    ["https://example.com/'x'", false],
    ['https://example.com/a b', false],
  ])('URL %j safe=%s', (url, safe) => expect(isSafeUrl(url)).toBe(safe));
});
