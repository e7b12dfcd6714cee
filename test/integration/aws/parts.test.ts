/**
 * The AWS driver's parts on their own: host keys from a console, the newest base image, the SSH
 * CIDR, client tokens, error context, and the SDK retry settings the driver uses by default (no
 * test retry strategy) against injected throttling and server errors on the EC2 fake.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KilnError } from '../../../src/core/errors.js';
import { generateKeyPair } from '../../../src/ssh/index.js';
import { lookupPublicAddress, sshSource as sshSourceCidr } from '../../../src/targets/builder-address.js';
import { newestImage } from '../../../src/targets/aws/base-image.js';
import { clientToken } from '../../../src/targets/aws/copies.js';
import { AwsDriver } from '../../../src/targets/aws/driver.js';
import { cloudError } from '../../../src/targets/aws/errors.js';
import { hostKeysFromConsole } from '../../../src/targets/aws/hostkeys.js';
import { startEc2Fake, type Ec2Fake } from '../../fakes/ec2/index.js';
import { CREDENTIALS } from '../../fakes/ec2/testkit.js';

describe('host keys from the console', () => {
  const ed = generateKeyPair('a').publicKey.split(' ').slice(0, 2).join(' ');
  const other = generateKeyPair('b').publicKey.split(' ').slice(0, 2).join(' ');

  it('reads the last complete keys block, with CRLF and prefixes, ignoring junk lines', () => {
    const console = [
      '[   10.1] cloud-init[800]: -----BEGIN SSH HOST KEY KEYS-----',
      `[   10.1] cloud-init[800]: ${other} root@old`,
      '[   10.1] cloud-init[800]: -----END SSH HOST KEY KEYS-----',
      'reboot',
      'ec2: -----BEGIN SSH HOST KEY KEYS-----',
      `ec2: ${ed} root@ip-172-31-0-10`,
      'ec2: ssh-ed25519 !!!not-base64 root@x',
      'ec2: -----END SSH HOST KEY KEYS-----',
      '-----BEGIN SSH HOST KEY KEYS-----',
      `${other} root@cut-off`,
    ].join('\r\n');
    expect(hostKeysFromConsole(console)).toEqual([ed]);
  });

  it('falls back to the fingerprints block, and finds nothing in a console without either', () => {
    const fp = 'SHA256:' + 'A'.repeat(43);
    const console = `-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 ${fp} root@ip (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n`;
    expect(hostKeysFromConsole(console)).toEqual([fp]);
    expect(hostKeysFromConsole('Booting...\nlogin:')).toEqual([]);
  });
});

describe('small decisions', () => {
  it('picks the newest image by CreationDate, whatever order EC2 answers in', () => {
    const images = [
      { ImageId: 'ami-1', Name: 'a', CreationDate: '2025-01-15T03:14:07.000Z' },
      { ImageId: 'ami-3', Name: 'c', CreationDate: '2025-09-08T03:14:07.000Z' },
      { ImageId: 'ami-2', Name: 'b', CreationDate: '2025-06-23T03:14:07.000Z' },
    ];
    expect(newestImage(images)?.ImageId).toBe('ami-3');
    expect(newestImage([])).toBeUndefined();
  });

  it('allows SSH from the plan\'s CIDR as given, else from the builder\'s address only', async () => {
    expect(await sshSourceCidr('10.0.0.0/8', async () => 'unused')).toBe('10.0.0.0/8');
    expect(await sshSourceCidr('0.0.0.0/0', async () => 'unused')).toBe('0.0.0.0/0');
    expect(await sshSourceCidr(undefined, async () => '203.0.113.9\n')).toBe('203.0.113.9/32');
    expect(await sshSourceCidr(undefined, async () => '2001:db8::1')).toBe('2001:db8::1/128');
    await expect(sshSourceCidr('10.0.0.0/33', async () => '')).rejects.toThrow(/not a CIDR block/);
    await expect(sshSourceCidr(undefined, async () => '<html>')).rejects.toThrow(/not an IP address/);
  });

  it('takes the builder address from KILN_BUILDER_ADDRESS when it is set, and only an IP', async () => {
    vi.stubEnv('KILN_BUILDER_ADDRESS', ' 198.51.100.4 ');
    try {
      expect(await sshSourceCidr(undefined, lookupPublicAddress)).toBe('198.51.100.4/32');
      vi.stubEnv('KILN_BUILDER_ADDRESS', 'my-nat.example.com');
      await expect(lookupPublicAddress()).rejects.toThrow(/KILN_BUILDER_ADDRESS: expected an IPv4 or IPv6 address/);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('keeps client tokens within EC2\'s 64 characters, deterministically', () => {
    expect(clientToken('kiln', 'rabc-aws-xs', 'launch', '1')).toBe('kiln-rabc-aws-xs-launch-1');
    const long = clientToken('x'.repeat(80), 'copy', 'ap-southeast-1');
    expect(long).toHaveLength(64);
    expect(clientToken('x'.repeat(80), 'copy', 'ap-southeast-1')).toBe(long);
    expect(clientToken('x'.repeat(80), 'copy', 'ap-southeast-2')).not.toBe(long);
  });

  it('names the API code and the resource in errors', () => {
    const sdkError = Object.assign(new Error('The security group sg-1 does not exist'), { name: 'InvalidGroup.NotFound', $metadata: { httpStatusCode: 400 } });
    const err = cloudError('DeleteSecurityGroup', { resource: 'sg-1', region: 'eu-west-1' }, sdkError);
    expect(err).toBeInstanceOf(KilnError);
    expect(err.code).toBe('CLOUD');
    expect(err.context).toMatchObject({ resource: 'sg-1', region: 'eu-west-1', code: 'InvalidGroup.NotFound' });
    expect(err.message).toBe('EC2 DeleteSecurityGroup in eu-west-1 failed for sg-1: InvalidGroup.NotFound: The security group sg-1 does not exist');
  });
});

describe('the driver\'s own SDK settings against the fake', () => {
  let fake: Ec2Fake;
  beforeAll(async () => {
    fake = await startEc2Fake();
  });
  afterAll(async () => fake?.close());

  it('retries throttling and server errors with the default retry settings, and fails with the code otherwise', async () => {
    // No test retry strategy: the driver's defaults (adaptive mode, 10 attempts).
    const driver = new AwsDriver({ clientConfig: { endpoint: fake.url, credentials: CREDENTIALS }, regions: ['eu-west-1'] });
    try {
      fake.failCall('DescribeVolumes', 1, 'RequestLimitExceeded');
      fake.failCall('DescribeImages', 1, 'InternalError');
      expect(await driver.listTagged({ signal: AbortSignal.timeout(30_000) })).toEqual([]);
      const codes = (action: string) => fake.calls.filter((c) => c.action === action).map((c) => c.errorCode ?? c.status);
      expect(codes('DescribeVolumes')).toEqual(['RequestLimitExceeded', 200]);
      expect(codes('DescribeImages')).toEqual(['InternalError', 200]);

      fake.failCall('DescribeKeyPairs', 2, 'UnauthorizedOperation', { message: 'You are not authorized to perform this operation.' });
      const err = await driver.listTagged({ signal: AbortSignal.timeout(30_000) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).context).toMatchObject({ code: 'UnauthorizedOperation', region: 'eu-west-1', action: 'DescribeKeyPairs' });
      expect(codes('DescribeKeyPairs')).toEqual([200, 'UnauthorizedOperation']);
    } finally {
      driver.close();
    }
  });

  it('deletes a key pair intent by name in the entry\'s region, and takes "already gone" for success', async () => {
    const driver = new AwsDriver({ clientConfig: { endpoint: fake.url, credentials: CREDENTIALS } });
    try {
      const entry = { seq: 1, build: 'rparts01-aws-xs', target: 'aws' as const, kind: 'key-pair', name: 'kiln-rparts01-xs-key', region: 'eu-west-1', role: 'temporary' as const, createdAt: '' };
      await driver.destroy(entry, { log: () => {}, signal: AbortSignal.timeout(10_000) });
      await driver.destroy({ ...entry, kind: 'volume', id: 'vol-0123456789abcdef0' }, { log: () => {}, signal: AbortSignal.timeout(10_000) });
      await driver.destroy({ ...entry, kind: 'image', name: 'never-made' }, { log: () => {}, signal: AbortSignal.timeout(10_000) });
      expect(fake.calls.filter((c) => c.region === 'eu-west-1').slice(-3).map((c) => `${c.action} ${c.errorCode ?? c.status}`)).toEqual([
        'DeleteKeyPair 200',
        'DescribeVolumes InvalidVolume.NotFound',
        'DescribeImages 200',
      ]);
    } finally {
      driver.close();
    }
  });
});
