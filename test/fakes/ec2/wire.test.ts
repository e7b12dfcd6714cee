import {
  AuthorizeSecurityGroupIngressCommand,
  CreateImageCommand,
  CreateSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeVpcsCommand,
  EC2Client,
  ImportKeyPairCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMAZON_OWNER, Ec2Error, type Ec2Fake } from './index.js';
import { CREDENTIALS, FAST_WAIT, ec2Client, ed25519PublicKey, rejection, withFake } from './testkit.js';

let fake: Ec2Fake;

beforeEach(async () => {
  fake = await withFake();
});
afterEach(async () => {
  expect(fake.unexpectedErrors).toEqual([]);
  await fake.close();
});

async function baseImage(client: EC2Client): Promise<string> {
  const { Images } = await client.send(
    new DescribeImagesCommand({ Owners: [AMAZON_OWNER], Filters: [{ Name: 'name', Values: ['al2023-ami-2023.8.*-x86_64'] }] }),
  );
  return Images?.[0]?.ImageId as string;
}

const AUTH = 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/sa-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00';

async function post(body: string, authorization?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(fake.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
    body,
  });
  return { status: res.status, text: await res.text() };
}

describe('the wire format', () => {
  it('answers in the EC2 namespace with a requestId', async () => {
    const { status, text } = await post('Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=is-default&Filter.1.Value.1=true', AUTH);
    expect(status).toBe(200);
    expect(text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<DescribeVpcsResponse xmlns="http:\/\/ec2.amazonaws.com\/doc\/2016-11-15\/">/);
    expect(text).toMatch(/<requestId>[0-9a-f-]{36}<\/requestId><vpcSet><item><vpcId>vpc-[0-9a-f]{17}<\/vpcId>/);
    expect(text).toContain('<isDefault>true</isDefault>');
  });

  it('answers errors with the EC2 error document and status', async () => {
    const unsigned = await post('Action=DescribeVpcs&Version=2016-11-15');
    expect(unsigned.status).toBe(401);
    expect(unsigned.text).toMatch(
      /<Response><Errors><Error><Code>AuthFailure<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    );
    const unknown = await post('Action=DescribeRegions&Version=2016-11-15', AUTH);
    expect(unknown.status).toBe(400);
    expect(unknown.text).toContain('<Code>InvalidAction</Code>');
  });

  it('serves each region from the SigV4 credential scope', async () => {
    const west = ec2Client(fake, 'us-west-2');
    const east = ec2Client(fake, 'us-east-1');
    await west.send(new ImportKeyPairCommand({ KeyName: 'regional', PublicKeyMaterial: Buffer.from(ed25519PublicKey()) }));
    expect((await west.send(new DescribeKeyPairsCommand({}))).KeyPairs?.map((k) => k.KeyName)).toEqual(['regional']);
    expect((await east.send(new DescribeKeyPairsCommand({}))).KeyPairs).toEqual([]);
    expect(fake.calls.map((c) => c.region)).toEqual(['us-west-2', 'us-west-2', 'us-east-1']);
  });

  it('is reachable through AWS_ENDPOINT_URL_EC2', async () => {
    const saved = process.env.AWS_ENDPOINT_URL_EC2;
    process.env.AWS_ENDPOINT_URL_EC2 = fake.url;
    try {
      const client = new EC2Client({ region: 'eu-north-1', credentials: CREDENTIALS });
      const { Vpcs } = await client.send(new DescribeVpcsCommand({}));
      expect(Vpcs).toHaveLength(1);
      expect(fake.calls.at(-1)?.region).toBe('eu-north-1');
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_EC2;
      else process.env.AWS_ENDPOINT_URL_EC2 = saved;
    }
  });

  it('answers DryRun with DryRunOperation (412) and changes nothing', async () => {
    const ec2 = ec2Client(fake, 'us-east-1');
    const err = await rejection(
      ec2.send(new RunInstancesCommand({ ImageId: await baseImage(ec2), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, DryRun: true })),
    );
    expect(err.name).toBe('DryRunOperation');
    expect(err.$metadata?.httpStatusCode).toBe(412);
    expect(fake.state.liveResources('us-east-1').instances).toEqual([]);
  });
});

describe('faults', () => {
  it('throttles 30% of requests; the SDK retries its way through a whole launch', async () => {
    fake.faults.configure({ throttleRate: 0.3, seed: 42 });
    const ec2 = ec2Client(fake, 'us-east-1', { maxAttempts: 10 });
    await ec2.send(new ImportKeyPairCommand({ KeyName: 'k', PublicKeyMaterial: Buffer.from(ed25519PublicKey()) }));
    const { GroupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'ssh', Description: 'ssh' }));
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '127.0.0.1/32' }] }],
      }),
    );
    const run = await ec2.send(
      new RunInstancesCommand({ ImageId: await baseImage(ec2), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, KeyName: 'k', SecurityGroupIds: [GroupId as string] }),
    );
    const id = run.Instances?.[0]?.InstanceId as string;
    await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    await waitUntilInstanceStopped({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });

    expect(fake.faults.served.throttle).toBeGreaterThan(0);
    const throttled = fake.calls.filter((c) => c.errorCode === 'RequestLimitExceeded');
    expect(throttled.length).toBe(fake.faults.served.throttle);
    expect(throttled.every((c) => c.status === 503)).toBe(true);
    expect(fake.state.liveResources('us-east-1')).toMatchObject({ instances: [id], keyPairs: ['k'], securityGroups: [GroupId] });
  });

  it('surfaces throttling as RequestLimitExceeded when retries are exhausted', async () => {
    fake.faults.configure({ throttleRate: 1 });
    const ec2 = ec2Client(fake, 'us-east-1', { maxAttempts: 1 });
    const err = await rejection(ec2.send(new DescribeVpcsCommand({})));
    expect(err.name).toBe('RequestLimitExceeded');
    expect(err.$metadata?.httpStatusCode).toBe(503);
  });

  it('answers server errors with InternalError (500) and Unavailable (503), which the SDK retries', async () => {
    fake.faults.configure({ serverErrorRate: 0.5, seed: 3, only: ['DescribeVpcs'] });
    const ec2 = ec2Client(fake, 'us-east-1', { maxAttempts: 10 });
    for (let i = 0; i < 8; i++) expect((await ec2.send(new DescribeVpcsCommand({}))).Vpcs).toHaveLength(1);
    const codes = fake.calls.filter((c) => c.errorCode).map((c) => `${c.errorCode} ${c.status}`);
    expect(new Set(codes)).toEqual(new Set(['InternalError 500', 'Unavailable 503']));
    expect(codes.length).toBe(fake.faults.served['server-error']);
  });

  it('fails exactly the scripted call', async () => {
    const ec2 = ec2Client(fake, 'us-east-1');
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await baseImage(ec2), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    const id = run.Instances?.[0]?.InstanceId as string;
    await waitUntilInstanceRunning({ client: ec2, ...FAST_WAIT }, { InstanceIds: [id] });
    fake.failCall('CreateImage', 3, 'InternalError');
    const results: string[] = [];
    for (let n = 1; n <= 4; n++) {
      try {
        await ec2.send(new CreateImageCommand({ InstanceId: id, Name: `image-${n}`, NoReboot: true }));
        results.push('ok');
      } catch (err) {
        results.push((err as Error).name);
      }
    }
    expect(results).toEqual(['ok', 'ok', 'InternalError', 'ok']);
    expect(fake.state.liveResources('us-east-1').images).toHaveLength(3);
  });

  it('can lose a response after the call took effect; the SDK retry with the same ClientToken is idempotent', async () => {
    const ec2 = ec2Client(fake, 'us-east-1', { maxAttempts: 3 });
    fake.failCall('RunInstances', 1, 'InternalError', { after: true });
    const run = await ec2.send(new RunInstancesCommand({ ImageId: await baseImage(ec2), InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }));
    expect(fake.calls.filter((c) => c.action === 'RunInstances').map((c) => c.status)).toEqual([500, 200]);
    expect(fake.state.liveResources('us-east-1').instances).toEqual([run.Instances?.[0]?.InstanceId]);
  });

  it('lets an interceptor answer with any EC2 error', async () => {
    const ec2 = ec2Client(fake, 'us-east-1');
    const remove = fake.intercept((call) =>
      call.action === 'RunInstances' && call.params.str('InstanceType') === 'm7i.24xlarge'
        ? new Ec2Error('InsufficientInstanceCapacity', 'We currently do not have sufficient m7i.24xlarge capacity.')
        : undefined,
    );
    const image = await baseImage(ec2);
    const err = await rejection(ec2.send(new RunInstancesCommand({ ImageId: image, InstanceType: 'm7i.24xlarge', MinCount: 1, MaxCount: 1 })));
    expect(err.name).toBe('InsufficientInstanceCapacity');
    expect(err.$metadata?.httpStatusCode).toBe(500);
    remove();
    await ec2.send(new RunInstancesCommand({ ImageId: image, InstanceType: 'm7i.24xlarge', MinCount: 1, MaxCount: 1 }));
    const { Reservations } = await ec2.send(new DescribeInstancesCommand({}));
    expect(Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceType)).toEqual(['m7i.24xlarge']);
  });
});
