/**
 * Microsoft.Compute/virtualMachines: create (with implicit managed OS and data disks, and existing
 * disks attached; see vm-spec.ts for the data disk rules), tags-only update, get (with
 * `$expand=instanceView`), delete honouring each disk's and NIC's `deleteOption` (a detached disk
 * stays, unattached). Power actions and the instance view live in vm-actions.ts.
 *
 * Create answers 201 `provisioningState: Creating` with `Azure-AsyncOperation`; after the
 * `vm.create` step the backend creates the OS disk (from the image's snapshot) and the new data disks,
 * then starts the machine with the admin user, its first SSH key and the public IP's loopback
 * address (a fresh loopback address when the primary NIC has no public IP); the VM is then
 * `Succeeded` and `PowerState/running`. Operations on one VM run in order (a delete sent while the
 * create is still running waits for it), as ARM serialises them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ArmError, armErrors } from '../errors.js';
import {
  arr,
  backendError,
  gone,
  newRecord,
  num,
  obj,
  props,
  requireLocation,
  startLro,
  str,
  tagsOf,
  trackedJson,
  type Core,
  type Json,
  type RequestContext,
  type ResourceKind,
  type ResourceRef,
} from '../kinds.js';
import type { ResourceRecord } from '../state.js';
import {
  C,
  COMPUTE_API_VERSIONS,
  enqueue,
  lunDevices,
  resolveImage,
  type DiskInternal,
  type VmDisk,
  type VmInternal,
} from './compute-common.js';
import { vmUsingNic } from './interfaces.js';
import { T, ipConfigs } from './network.js';
import { instanceView, vmActions } from './vm-actions.js';
import { adminAccount, deleteOptionOf, imageKey, planDataDisks, planDisk, type PlannedDisk } from './vm-spec.js';

type Vm = ResourceRecord<VmInternal>;

export function vmKind(core: Core): ResourceKind {
  const kind: ResourceKind = {
    type: C.vm,
    operationGroup: 'virtualMachines',
    apiVersions: COMPUTE_API_VERSIONS,
    tracked: true,
    purgeOrder: 10,
    serialize: (rec, ctx) => {
      const json = trackedJson(rec);
      if (/^instanceview$/i.test(ctx?.query.get('$expand') ?? '')) {
        (json.properties as Json).instanceView = instanceView(core, rec as Vm);
      }
      return json;
    },
    put: (ctx, ref) => {
      core.state.requireGroup(ref.resourceGroup, true);
      const existing = core.state.get<VmInternal>(ref.id);
      return existing ? update(core, kind, ctx, existing) : create(core, kind, ctx, ref);
    },
    delete: (ctx, rec) => remove(core, ctx, rec as Vm),
    actions: vmActions(core),
    purge: async (rec) => {
      const vm = rec as Vm;
      await enqueue(vm, async () => {
        if (vm.internal.machineExists) await core.machines.destroyMachine(vm.internal.machineId);
        vm.internal.machineExists = false;
        for (const d of vm.internal.disks) if (d.deleteOption === 'Detach') delete core.state.get(d.id)?.managedBy;
      });
    },
  };
  return kind;
}

function create(core: Core, kind: ResourceKind, ctx: RequestContext, ref: ResourceRef) {
  const location = requireLocation(ctx.body);
  const p = props(ctx.body);
  const sizeName = str(obj(p.hardwareProfile).vmSize) ?? '';
  const sizeKey = Object.keys(core.vmSizes).find((k) => k.toLowerCase() === sizeName.toLowerCase());
  if (!sizeKey) throw armErrors.invalidParameter(`The value '${sizeName}' provided for the VM size is not valid.`, 'hardwareProfile.vmSize');
  const sp = obj(p.storageProfile);
  const image = resolveImage(core, obj(sp.imageReference), location, core.knownImages);

  // OS disk
  const osDisk = obj(sp.osDisk);
  const createOption = str(osDisk.createOption) ?? 'FromImage';
  if (createOption.toLowerCase() !== 'fromimage') throw armErrors.notImplemented(`osDisk createOption '${createOption}'`);
  const osSize = num(osDisk.diskSizeGB) ?? image.captured.os.sizeGb;
  if (osSize < image.captured.os.sizeGb) {
    throw new ArmError(
      409,
      'ResizeDiskError',
      `Disk size ${osSize} GB is smaller than the size of the corresponding disk in the VM image: ${image.captured.os.sizeGb} GB.`,
    );
  }
  const suffix = (): string => randomBytes(16).toString('hex');
  const disks: PlannedDisk[] = [
    planDisk(osDisk, str(osDisk.name) ?? `${ref.name}_OsDisk_1_${suffix()}`, osSize, image.captured.os.snapshotId),
  ];

  // data disks: Empty, FromImage or Attach; the image's own come along when none is listed
  disks.push(...planDataDisks(core, arr(sp.dataDisks), image.captured, { id: ref.id, name: ref.name, location }, suffix));

  // admin user and key
  const osProfile = obj(p.osProfile);
  const { user, keys, noPassword } = adminAccount(osProfile);

  // network interfaces
  const nicRefs = arr(obj(p.networkProfile).networkInterfaces);
  if (nicRefs.length === 0) throw armErrors.invalidParameter('The virtual machine must have at least one network interface.', 'networkProfile');
  const nics = nicRefs.map((n, i) => {
    const id = str(n.id) ?? '';
    const nic = core.state.get(id);
    if (!nic || nic.type !== T.nic || nic.location !== location) throw armErrors.invalidReference(id, ref.id);
    const owner = vmUsingNic(core, nic.id);
    if (owner) throw armErrors.badRequest('NicInUse', `Network Interface ${nic.id} is used by existing resource ${owner.id}.`);
    const np = props(n);
    return { rec: nic, primary: np.primary === true || (i === 0 && !nicRefs.some((x) => props(x).primary === true)), deleteOption: deleteOptionOf(np.deleteOption) };
  });
  const primaryNic = nics.find((n) => n.primary)?.rec;
  const pipId = str(obj(props(ipConfigs(primaryNic as ResourceRecord)[0] ?? {}).publicIPAddress).id);
  const address = str(core.state.get(pipId)?.properties.ipAddress) ?? core.addresses.allocate();

  // disk records (the names of new disks must be free: ARM only attaches existing disks)
  for (const d of disks.filter((x) => !x.existing)) {
    const id = core.state.resourceId(ref.resourceGroup, C.disk, [d.name]);
    if (core.state.get(id)) {
      throw armErrors.conflict(`Disk ${d.name} already exists in resource group ${ref.resourceGroup.toUpperCase()}. Only CreateOption.Attach is supported.`);
    }
  }
  const vmId = randomUUID();
  const diskRecords = disks.map((d) => {
    if (d.existing) return { plan: d, rec: d.existing };
    const id = core.state.resourceId(ref.resourceGroup, C.disk, [d.name]);
    const uniqueId = randomUUID();
    const internal: DiskInternal = { backendId: `disk-${uniqueId}`, sizeGb: d.sizeGb, created: false };
    if (d.snapshot) internal.fromSnapshot = d.snapshot;
    const creationData: Json = d.snapshot ? { createOption: 'FromImage', imageReference: image.served } : { createOption: 'Empty' };
    const rec = newRecord<DiskInternal>(
      { id, type: C.disk, names: [d.name], name: d.name, resourceGroup: ref.resourceGroup },
      {
        location,
        tags: {},
        sku: { name: d.storageAccountType, tier: d.storageAccountType.startsWith('Premium') ? 'Premium' : 'Standard' },
        managedBy: ref.id,
        tracked: true,
        internal,
        properties: {
          ...(d.lun === undefined ? { osType: 'Linux', hyperVGeneration: image.hyperVGeneration } : {}),
          creationData,
          diskSizeGB: d.sizeGb,
          diskSizeBytes: d.sizeGb * 1024 ** 3,
          uniqueId,
          encryption: { type: 'EncryptionAtRestWithPlatformKey' },
          networkAccessPolicy: 'AllowAll',
          publicNetworkAccess: 'Enabled',
          timeCreated: new Date().toISOString(),
          provisioningState: 'Updating',
        },
      },
    );
    return { plan: d, rec };
  });

  const diskJson = ({ plan, rec }: (typeof diskRecords)[number]): Json => ({
    ...(plan.lun === undefined ? { osType: 'Linux' } : { lun: plan.lun }),
    name: plan.name,
    createOption: plan.existing ? 'Attach' : plan.snapshot ? 'FromImage' : 'Empty',
    caching: plan.lun === undefined ? 'ReadWrite' : 'None',
    managedDisk: { id: rec.id, storageAccountType: plan.storageAccountType },
    deleteOption: plan.deleteOption,
    diskSizeGB: plan.sizeGb,
    ...(plan.lun === undefined ? {} : { toBeDetached: false }),
  });
  const [osEntry, ...dataEntries] = diskRecords;
  const vm = newRecord<VmInternal>(ref, {
    location,
    tags: tagsOf(ctx.body),
    tracked: true,
    internal: {
      vmId,
      machineId: `vm-${vmId}`,
      power: 'starting',
      generalized: false,
      machineExists: false,
      address,
      sshUser: user,
      sshKey: str(keys[0]?.keyData) ?? '',
      size: core.vmSizes[sizeKey] as VmInternal['size'],
      disks: diskRecords.map(({ plan, rec }): VmDisk => ({ id: rec.id, deleteOption: plan.deleteOption, ...(plan.lun === undefined ? {} : { lun: plan.lun }) })),
      nics: nics.map((n) => ({ id: n.rec.id, deleteOption: n.deleteOption })),
      chain: Promise.resolve(),
    },
    properties: {
      vmId,
      hardwareProfile: { vmSize: sizeKey },
      storageProfile: {
        imageReference: image.served,
        osDisk: diskJson(osEntry as (typeof diskRecords)[number]),
        dataDisks: dataEntries.map(diskJson),
        diskControllerType: 'SCSI',
      },
      osProfile: {
        computerName: str(osProfile.computerName) ?? ref.name,
        adminUsername: user,
        linuxConfiguration: {
          disablePasswordAuthentication: noPassword,
          ssh: { publicKeys: keys.map((k) => ({ path: str(k.path) ?? `/home/${user}/.ssh/authorized_keys`, keyData: k.keyData })) },
          provisionVMAgent: true,
          patchSettings: { patchMode: 'ImageDefault', assessmentMode: 'ImageDefault' },
        },
        secrets: [],
        allowExtensionOperations: true,
        requireGuestProvisionSignal: true,
      },
      networkProfile: {
        networkInterfaces: nics.map((n) => ({ id: n.rec.id, properties: { primary: n.primary, deleteOption: n.deleteOption } })),
      },
      provisioningState: 'Creating',
      timeCreated: new Date().toISOString(),
    },
  });
  for (const d of diskRecords) {
    if (d.plan.existing) d.rec.managedBy = ref.id;
    else core.state.put(d.rec);
  }
  core.state.put(vm);

  return startLro(core, ctx, vm, {
    step: 'vm.create',
    status: 201,
    body: kind.serialize(vm, ctx),
    work: () =>
      enqueue(vm, async () => {
        await core.steps.wait('vm.create', { resourceId: vm.id });
        for (const { rec } of diskRecords) {
          if (!core.state.isLive(vm) || !core.state.isLive(rec)) throw gone(vm.id);
          if (rec.internal.created) continue; // an attached disk
          await core.machines.createDisk(rec.internal.backendId, rec.internal.sizeGb, rec.internal.fromSnapshot).catch((e: unknown) => {
            throw backendError(e);
          });
          rec.internal.created = true;
          rec.properties.provisioningState = 'Succeeded';
        }
        if (!core.state.isLive(vm)) throw gone(vm.id);
        await core.machines
          .startMachine({
            id: vm.internal.machineId,
            diskIds: diskRecords.map((d) => d.rec.internal.backendId),
            sshUser: vm.internal.sshUser,
            sshPublicKey: vm.internal.sshKey,
            address: vm.internal.address,
            cpus: vm.internal.size.cpus,
            memoryMiB: vm.internal.size.memoryMiB,
            devices: lunDevices(diskRecords.map((d) => ({ backendId: d.rec.internal.backendId, lun: d.plan.lun }))),
          })
          .catch((e: unknown) => {
            throw backendError(e);
          });
        vm.internal.machineExists = true;
        vm.internal.power = 'running';
        vm.properties.provisioningState = 'Succeeded';
      }),
    onFailure: () => {
      vm.properties.provisioningState = 'Failed';
    },
  });
}

/** PUT on an existing VM: tags may change; the image, size, user and disks may not. */
function update(core: Core, kind: ResourceKind, ctx: RequestContext, vm: ResourceRecord<VmInternal>) {
  if (vm.properties.provisioningState === 'Deleting') throw armErrors.conflict(`The virtual machine ${vm.name} is being deleted.`);
  const p = props(ctx.body);
  const changed = (label: string, now: unknown, before: unknown): void => {
    if (now !== undefined && JSON.stringify(now) !== JSON.stringify(before)) {
      throw armErrors.conflict(`Changing property '${label}' is not allowed.`, 'PropertyChangeNotAllowed');
    }
  };
  const requested = obj(obj(p.storageProfile).imageReference);
  if (Object.keys(requested).length) changed('imageReference', imageKey(requested), imageKey(obj(obj(vm.properties.storageProfile).imageReference)));
  changed('adminUsername', str(obj(p.osProfile).adminUsername), obj(vm.properties.osProfile).adminUsername);
  vm.tags = tagsOf(ctx.body);
  vm.properties.provisioningState = 'Updating';
  return startLro(core, ctx, vm, {
    step: 'vm.update',
    status: 200,
    body: kind.serialize(vm, ctx),
    work: () =>
      enqueue(vm, async () => {
        await core.steps.wait('vm.update', { resourceId: vm.id });
        vm.properties.provisioningState = 'Succeeded';
      }),
    onFailure: () => {
      vm.properties.provisioningState = 'Failed';
    },
  });
}

/** DELETE: the machine goes; disks and NICs go too when their deleteOption says Delete. */
function remove(core: Core, ctx: RequestContext, vm: ResourceRecord<VmInternal>) {
  vm.properties.provisioningState = 'Deleting';
  return startLro(core, ctx, vm, {
    step: 'vm.delete',
    status: 202,
    location: true,
    work: () =>
      enqueue(vm, async () => {
        await core.steps.wait('vm.delete', { resourceId: vm.id });
        if (vm.internal.machineExists) {
          await core.machines.destroyMachine(vm.internal.machineId).catch((e: unknown) => {
            throw backendError(e);
          });
          vm.internal.machineExists = false;
        }
        for (const d of vm.internal.disks) {
          const disk = core.state.get<DiskInternal>(d.id);
          if (!disk) continue;
          if (d.deleteOption === 'Delete') {
            if (disk.internal.created) await core.machines.deleteDisk(disk.internal.backendId).catch((e: unknown) => {
              throw backendError(e);
            });
            core.state.remove(disk.id);
          } else {
            delete disk.managedBy;
          }
        }
        if (core.state.isLive(vm)) core.state.remove(vm.id);
        for (const n of vm.internal.nics) if (n.deleteOption === 'Delete' && core.state.get(n.id)) core.state.remove(n.id);
      }),
    onFailure: () => {
      vm.properties.provisioningState = 'Failed';
    },
  });
}
