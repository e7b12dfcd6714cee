/**
 * A build's (or a validation instance's) temporary access, each part in the ledger before its create
 * call: the key pair holding the one public key allowed in, and a security group in the plan's
 * subnet's VPC (or the default VPC) letting tcp 22 in from the plan's sshCidr, else from this
 * builder's public address.
 */
import type { BuildContext } from '../../pipeline/context.js';
import { lookupPublicAddress, sshSource, type BuilderAddressLookup } from '../builder-address.js';
import { allowSsh, buildVpc, createSecurityGroup, importKeyPair } from './access.js';
import { buildTags, scopeOf, targetPlan } from './build-context.js';
import type { Ec2Api } from './clients.js';

export interface AccessSpec {
  keyPairName: string;
  securityGroupName: string;
  publicKey: string;
  builderAddress?: BuilderAddressLookup;
}

export interface TemporaryAccess {
  keyPairId: string;
  securityGroupId: string;
  vpcId: string;
  sshCidr: string;
}

export async function createTemporaryAccess(api: Ec2Api, ctx: BuildContext, spec: AccessSpec): Promise<TemporaryAccess> {
  const t = targetPlan(ctx);
  const tagged = { build: ctx.plan.buildId, tags: buildTags(ctx) };
  const keyPair = await ctx.resources.create({ kind: 'key-pair', name: spec.keyPairName, region: t.region }, async () => ({
    id: await importKeyPair(api, scopeOf(ctx, spec.keyPairName), { ...tagged, name: spec.keyPairName, publicKey: spec.publicKey }),
  }));

  const cidr = await sshSource(ctx.plan.access.sshCidr, spec.builderAddress ?? lookupPublicAddress, ctx.signal);
  if (cidr.endsWith('/0')) ctx.log.line(`aws: warning: sshCidr ${cidr} lets SSH in from anywhere`);
  const vpcId = await buildVpc(api, scopeOf(ctx, spec.securityGroupName), t.subnetId);
  const group = await ctx.resources.create({ kind: 'security-group', name: spec.securityGroupName, region: t.region, extra: { vpcId } }, async () => ({
    id: await createSecurityGroup(api, scopeOf(ctx, spec.securityGroupName), { ...tagged, name: spec.securityGroupName, vpcId }),
  }));
  await allowSsh(api, scopeOf(ctx, group.id), group.id, cidr);
  ctx.log.line(`aws: key pair ${spec.keyPairName}, security group ${group.id} in ${vpcId} allows tcp/22 from ${cidr}`);
  return { keyPairId: keyPair.id, securityGroupId: group.id, vpcId, sshCidr: cidr };
}
