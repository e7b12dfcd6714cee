/**
 * The GCE driver's pure parts, without the SDK: labels from kiln's tags, reading API errors from the
 * shapes the SDK throws (GaxiosError, GoogleError, network errors), host keys from a serial console,
 * IAM binding merges, the SSH source range, the endpoint override and the instance body.
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { environmentClientOptions } from '../../../src/targets/gcp/endpoint.js';
import { apiFailure, cloudError, isNotFound, isTransient } from '../../../src/targets/gcp/errors.js';
import { sshSource as sshSourceRange } from '../../../src/targets/builder-address.js';
import { hostKeysFromConsole } from '../../../src/targets/gcp/hostkeys.js';
import { mergeBindings } from '../../../src/targets/gcp/images.js';
import { instanceResource } from '../../../src/targets/gcp/instance.js';
import { gceLabels } from '../../../src/targets/gcp/labels.js';

describe('GCE labels', () => {
  it('maps kiln tags to valid label keys and values', () => {
    expect(gceLabels({ 'kiln:run': 'r1', 'kiln:version': '5.2.0', 'kiln:definition': 'Source Graph', '9lives': `x${'y'.repeat(80)}` })).toEqual({
      'kiln-run': 'r1',
      'kiln-version': '5-2-0',
      'kiln-definition': 'source-graph',
      'k-9lives': `x${'y'.repeat(62)}`,
    });
  });
});

describe('GCE API errors', () => {
  const body = (code: number, reason: string) => JSON.stringify({ error: { code, message: `it is ${reason}`, errors: [{ reason, domain: 'global', message: 'x' }] } });

  it('reads a GaxiosError: HTTP status and the JSON body in message', () => {
    const err = Object.assign(new Error(body(404, 'notFound')), { status: 404, code: 404 });
    expect(apiFailure(err)).toEqual({ status: 404, reason: 'notFound', message: 'it is notFound', network: undefined });
    expect(isNotFound(err)).toBe(true);
    expect(isTransient(apiFailure(Object.assign(new Error(body(429, 'rateLimitExceeded')), { status: 429 })))).toBe(true);
    expect(isTransient(apiFailure(Object.assign(new Error(body(403, 'rateLimitExceeded')), { status: 403 })))).toBe(true);
    expect(isTransient(apiFailure(Object.assign(new Error(body(503, 'backendError')), { status: 503 })))).toBe(true);
    expect(isTransient(apiFailure(Object.assign(new Error(body(409, 'alreadyExists')), { status: 409 })))).toBe(false);
    expect(isTransient(apiFailure(Object.assign(new Error(body(403, 'forbidden')), { status: 403 })))).toBe(false);
  });

  it('reads a GoogleError: gRPC code and reason', () => {
    expect(apiFailure(Object.assign(new Error('8 RESOURCE_EXHAUSTED: quota'), { code: 8, reason: 'RATE_LIMIT_EXCEEDED' }))).toMatchObject({ status: 429, reason: 'RATE_LIMIT_EXCEEDED' });
    expect(isTransient(apiFailure(Object.assign(new Error('14 UNAVAILABLE'), { code: 14 })))).toBe(true);
    expect(isNotFound(Object.assign(new Error('5 NOT_FOUND'), { code: 5 }))).toBe(true);
  });

  it('retries a reset connection but not a refused one', () => {
    expect(isTransient(apiFailure(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })))).toBe(true);
    expect(isTransient(apiFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })))).toBe(false);
  });

  it('makes a CLOUD KilnError naming the reason and the resource', () => {
    const err = cloudError(Object.assign(new Error(body(403, 'forbidden')), { status: 403 }), 'creating image', 'projects/p/global/images/i');
    expect(err).toMatchObject({ code: 'CLOUD', message: 'GCE: creating image projects/p/global/images/i failed: forbidden: it is forbidden' });
    expect(err.context).toEqual({ resource: 'projects/p/global/images/i', reason: 'forbidden', status: 403 });
  });
});

describe('GCE host keys from the serial console', () => {
  it('takes the valid keys of the block, whatever prefixes the console adds', () => {
    const ed = generateKeyPair('a').publicKey.split(' ').slice(0, 2).join(' ');
    const console = [
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOutsideTheBlockXXXXXXXXXXXXXXXXXXXXXXXXXXX',
      '[   12.3] cloud-init[812]: -----BEGIN SSH HOST KEY KEYS-----',
      `[   12.3] cloud-init[812]: ${ed} root@builder`,
      '[   12.3] cloud-init[812]: ssh-rsa AAAAnot-base64-of-an-rsa-key root@builder',
      '[   12.3] cloud-init[812]: -----END SSH HOST KEY KEYS-----',
    ].join('\n');
    expect(hostKeysFromConsole(console)).toEqual([ed]);
    expect(hostKeysFromConsole('no keys here')).toEqual([]);
  });
});

describe('GCE IAM bindings', () => {
  it('adds members to the role, keeps others, and says when nothing changes', () => {
    const bindings = [
      { role: 'roles/compute.imageUser', members: ['user:a@example.com'] },
      { role: 'roles/compute.imageUser', members: ['user:c@example.com'], condition: { expression: 'true' } },
    ];
    expect(mergeBindings(bindings, [{ role: 'roles/compute.imageUser', members: ['user:a@example.com', 'group:b@example.com'] }])).toEqual([
      { role: 'roles/compute.imageUser', members: ['user:a@example.com', 'group:b@example.com'] },
      bindings[1],
    ]);
    expect(mergeBindings(bindings, [{ role: 'roles/compute.imageUser', members: ['user:a@example.com'] }])).toBeUndefined();
    expect(mergeBindings([], [{ role: 'roles/viewer', members: ['allUsers'] }])).toEqual([{ role: 'roles/viewer', members: ['allUsers'] }]);
  });
});

describe('GCE SSH source range', () => {
  it('is the plan CIDR as given, else the builder address as a host route, never a guess', async () => {
    const lookup = async () => '203.0.113.7';
    expect(await sshSourceRange('10.0.0.0/8', lookup)).toBe('10.0.0.0/8');
    expect(await sshSourceRange(undefined, lookup)).toBe('203.0.113.7/32');
    await expect(sshSourceRange(undefined, async () => '<html>rate limited</html>')).rejects.toThrow(/not an IP address/);
  });
});

describe('GCE client options from the environment', () => {
  it('points the clients at KILN_GCE_ENDPOINT', () => {
    expect(environmentClientOptions({})).toEqual({ fallback: true });
    expect(environmentClientOptions({ KILN_GCE_ENDPOINT: 'http://127.0.0.1:8089' })).toEqual({ fallback: true, apiEndpoint: '127.0.0.1', port: 8089, protocol: 'http' });
    expect(() => environmentClientOptions({ KILN_GCE_ENDPOINT: 'not a url' })).toThrow(/KILN_GCE_ENDPOINT/);
  });
});

describe('GCE instance body', () => {
  it('names the subnetwork in the zone\'s region and leaves out what is not given', () => {
    const body = instanceResource({
      project: 'p',
      zone: 'europe-west4-a',
      name: 'i',
      description: 'd',
      machineType: 'e2-standard-4',
      boot: { name: 'b', sizeGb: 20, sourceImage: 'projects/debian-cloud/global/images/family/debian-12' },
      data: { name: 'd', sizeGb: 100, deviceName: 'kiln-data', type: 'pd-balanced' },
      autoDelete: false,
      network: 'projects/shared/global/networks/vpc',
      subnetwork: 'builders',
      networkTag: 't',
      sshUser: 'kiln',
      sshPublicKey: 'ssh-ed25519 AAAA k',
      labels: {},
    });
    expect(body.networkInterfaces).toEqual([
      { network: 'projects/shared/global/networks/vpc', subnetwork: 'regions/europe-west4/subnetworks/builders', accessConfigs: [{ type: 'ONE_TO_ONE_NAT', name: 'External NAT' }] },
    ]);
    expect(body.disks?.[0]?.initializeParams).not.toHaveProperty('diskType');
    expect(body.disks?.[1]?.initializeParams?.diskType).toBe('zones/europe-west4-a/diskTypes/pd-balanced');
  });
});
