using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Maps;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>One entry of a map as user space reads it: the key, the value (for a per-CPU map every possible CPU's
/// value, each padded to 8 bytes, as BPF_MAP_LOOKUP_ELEM returns it) and, for per-CPU maps, each CPU's value alone.</summary>
public sealed record BpfMapEntry(byte[] Key, byte[] Value, byte[][]? PerCpu)
{
    public override string ToString()
        => $"{Convert.ToHexString(Key)} => {(PerCpu is null ? Convert.ToHexString(Value) : string.Join(" | ", PerCpu.Select(Convert.ToHexString)))}";
}

/// <summary>The result of one BPF_PROG_TEST_RUN: the verdict, the frame as the program left it (data_meta..data_end)
/// and, when run more than once, the kernel's mean time per run.</summary>
public readonly record struct BpfKernelRun(uint Verdict, byte[] Frame, uint DurationNs);

/// <summary>
/// A loaded <see cref="BpfObject"/> put into the kernel as libbpf's bpf_object__load would (tools/lib/bpf/libbpf.c,
/// bpf_object__create_maps then bpf_object__load_progs): every map created with the object's spec (array/hash of
/// maps with a template inner map; global data arrays filled with their initial bytes, .rodata then frozen), every
/// program's relocated instructions turned back into what BPF_PROG_LOAD takes (ld_imm64 of a map: imm = the map's
/// fd; of a global variable: imm = the data map's fd, the next imm = the offset in its value) and loaded as XDP
/// with the object's license. Kernel comparisons run the same frames here and in Softnet and compare verdicts,
/// frames and map contents; root only (<see cref="BpfSyscall"/>). Dispose closes every descriptor.
/// </summary>
public sealed unsafe class BpfKernelObject : IDisposable
{
    public BpfObject Object { get; }
    private readonly Dictionary<BpfMap, int> _mapFds = [];
    private readonly Dictionary<BpfObjectProgram, int> _progFds = [];
    private readonly int _cpus;

    private BpfKernelObject(BpfObject obj, int cpus)
    {
        Object = obj;
        _cpus = cpus;
    }

    /// <summary>The number of possible CPUs (/sys/devices/system/cpu/possible), the count per-CPU map values come in.
    /// Load the object with it (<c>BpfObject.Load(path, BpfKernelObject.PossibleCpus())</c>) for per-CPU values to
    /// compare.</summary>
    public static int PossibleCpus() => Maps.BpfMapFactory.PossibleCpus();

    /// <summary>
    /// Creates the object's maps in the kernel (with our maps' current contents, so both start equal), then loads its
    /// programs — all of them, or those <paramref name="programs"/> selects — and fills the kernel's prog arrays from
    /// ours. Throws <see cref="BpfSyscallException"/> (with the verifier's log) when the kernel refuses anything.
    /// </summary>
    public static BpfKernelObject Load(BpfObject obj, Func<BpfObjectProgram, bool>? programs = null)
    {
        var k = new BpfKernelObject(obj, PossibleCpus());
        try
        {
            foreach (var map in obj.Maps) k.CreateMap(map);
            foreach (var p in obj.Programs)
                if (programs is null || programs(p)) k.LoadProgram(p);
            foreach (var map in obj.Maps)
                if (map is BpfProgArrayMap pa) k.CopyProgArray(pa);
            return k;
        }
        catch
        {
            k.Dispose();
            throw;
        }
    }

    private static string KernelName(string name)
    {
        // The kernel takes [A-Za-z0-9_.] only, 15 bytes and the NUL.
        var sb = new StringBuilder(name.Length);
        foreach (char c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || c == '.' ? c : '_');
        return sb.Length > 15 ? sb.ToString(0, 15) : sb.ToString();
    }

    private void CreateMap(BpfMap map)
    {
        var spec = map.Spec;
        int inner = 0;
        try
        {
            if (spec.Type is BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps)
            {
                // The kernel wants a live map of the inner shape as a template (libbpf creates one and closes it after).
                var i = spec.Inner ?? throw new InvalidOperationException($"map '{spec.Name}': a map of maps needs an inner map definition");
                inner = BpfSyscall.CreateMap((uint)i.Type, (uint)i.KeySize, (uint)i.ValueSize, (uint)i.MaxEntries, i.Flags, KernelName(i.Name));
            }
            int fd = BpfSyscall.CreateMap((uint)spec.Type, (uint)spec.KeySize, (uint)spec.ValueSize, (uint)spec.MaxEntries, spec.Flags,
                KernelName(spec.Name), inner);
            _mapFds[map] = fd;
            CopyToKernel(map);
            // bpf_object__populate_internal_map: .rodata is frozen once filled.
            if (spec.ReadOnlyForProgram && spec.InitialValue is not null) BpfSyscall.Freeze(fd);
        }
        finally
        {
            if (inner > 0) BpfSyscall.Close(inner);
        }
    }

    /// <summary>The program's instructions with our map handles and global-data addresses replaced by kernel fds.</summary>
    public ulong[] KernelInsns(BpfObjectProgram prog)
    {
        var insns = prog.Insns;
        var raw = new ulong[insns.Length];
        for (int i = 0; i < insns.Length; i++)
        {
            var insn = insns[i];
            if (insn.IsLdImm64 && i + 1 < insns.Length && insn.Src is BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE)
            {
                ulong value = (uint)insn.Imm | ((ulong)(uint)insns[i + 1].Imm << 32);
                int fd, offset = 0;
                if (insn.Src == BPF_PSEUDO_MAP_FD)
                {
                    var map = Object.Space.MapAt(value) ?? throw new InvalidOperationException($"{prog.Section}:{i}: ld_imm64 of unknown map handle 0x{value:x}");
                    fd = _mapFds[map];
                }
                else
                {
                    (var map, offset) = DataMapAt(value) ?? throw new InvalidOperationException($"{prog.Section}:{i}: ld_imm64 of address 0x{value:x}, in no global data map");
                    fd = _mapFds[map];
                }
                raw[i] = (insn with { Imm = fd }).ToUInt64();
                raw[i + 1] = (insns[i + 1] with { Imm = offset }).ToUInt64();
                i++;
                continue;
            }
            raw[i] = insn.ToUInt64();
        }
        return raw;
    }

    /// <summary>The one-entry array map (global data) whose value holds <paramref name="address"/>, and the offset in it.</summary>
    private (BpfMap Map, int Offset)? DataMapAt(ulong address)
    {
        Span<byte> zero = stackalloc byte[4];
        zero.Clear();
        foreach (var m in Object.Maps)
        {
            if (m.Type != BpfMapType.Array || m.KeySize != 4) continue;
            ulong b = m.Lookup(zero, 0);
            if (b == 0 || (b >> 32) != (address >> 32) || address < b || address - b >= (ulong)m.ValueSize) continue;
            return (m, (int)(address - b));
        }
        return null;
    }

    private void LoadProgram(BpfObjectProgram p)
    {
        // libbpf's section table: "xdp.frags" programs carry BPF_F_XDP_HAS_FRAGS; "xdp/devmap" and "xdp/cpumap" attach
        // to a map entry; everything else is BPF_XDP.
        uint attach = p.Section.StartsWith("xdp/devmap", StringComparison.Ordinal) || p.Section.StartsWith("xdp.frags/devmap", StringComparison.Ordinal) ? BpfSyscall.AttachXdpDevmap
            : p.Section.StartsWith("xdp/cpumap", StringComparison.Ordinal) || p.Section.StartsWith("xdp.frags/cpumap", StringComparison.Ordinal) ? BpfSyscall.AttachXdpCpumap
            : BpfSyscall.AttachXdp;
        uint flags = p.Section.StartsWith("xdp.frags", StringComparison.Ordinal) ? BpfSyscall.ProgFlagXdpHasFrags : 0;
        var raw = KernelInsns(p);
        string license = Object.License.Length > 0 ? Object.License : "GPL";
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                _progFds[p] = BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, raw, license, KernelName(p.Name), attach, flags);
                return;
            }
            catch (BpfSyscallException e) when (e.Errno == 11 /* EAGAIN: signal pending */ && attempt < 5) { }
            catch (BpfSyscallException e)
            {
                throw new BpfSyscallException($"BPF_PROG_LOAD of {Object.Name}:{p.Section}/{p.Name}", e.Errno, e.VerifierLog);
            }
        }
    }

    /// <summary>The kernel map fd of one of the object's maps.</summary>
    public int KernelMapFd(BpfMap map)
        => _mapFds.TryGetValue(map, out int fd) ? fd : throw new ArgumentException($"map '{map.Name}' is not one of {Object.Name}'s", nameof(map));

    /// <summary>The kernel map fd of the map named <paramref name="name"/>.</summary>
    public int KernelMapFd(string name) => KernelMapFd(Object.Map(name) ?? throw new ArgumentException($"{Object.Name} has no map '{name}'", nameof(name)));

    /// <summary>The program fd of the program in section (or named) <paramref name="sectionOrName"/> (null: the first XDP program).</summary>
    public int ProgramFd(string? sectionOrName = null)
    {
        var p = Object.Program(sectionOrName);
        return _progFds.TryGetValue(p, out int fd) ? fd : throw new ArgumentException($"{Object.Name}:{p.Section} was not loaded into the kernel", nameof(sectionOrName));
    }

    /// <summary>Stores the program <paramref name="sectionOrName"/> at <paramref name="slot"/> of the kernel's prog array.</summary>
    public void SetProgram(BpfMap progArray, uint slot, string sectionOrName)
    {
        Span<byte> key = stackalloc byte[4], value = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(key, slot);
        BinaryPrimitives.WriteInt32LittleEndian(value, ProgramFd(sectionOrName));
        BpfSyscall.UpdateElem(KernelMapFd(progArray), key, value);
    }

    /// <summary>Fills the kernel's prog array as ours is: each slot holding one of the object's programs (matched by its
    /// instructions, <see cref="FdOf"/>) gets that program's fd; an empty slot of ours is deleted from the kernel's.</summary>
    public void CopyProgArray(BpfProgArrayMap ours)
    {
        int fd = KernelMapFd(ours);
        Span<byte> key = stackalloc byte[4], value = stackalloc byte[4];
        for (uint i = 0; i < (uint)ours.MaxEntries; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(key, i);
            var prog = ours.ProgramAt(i);
            if (prog is null)
            {
                BpfSyscall.DeleteElem(fd, key);
                continue;
            }
            BinaryPrimitives.WriteInt32LittleEndian(value, FdOf(prog) ?? throw new InvalidOperationException($"{ours.Name}[{i}] holds a program that is none of {Object.Name}'s loaded programs"));
            BpfSyscall.UpdateElem(fd, key, value);
        }
    }

    /// <summary>The kernel fd of the object program <paramref name="prog"/> was verified from: the one with the same
    /// instructions, where the verifier's rewrites (of context accesses, helper calls) leave most of them as they were.</summary>
    private int? FdOf(BpfProgram prog)
    {
        int best = -1, bestFd = 0;
        foreach (var (p, fd) in _progFds)
        {
            if (p.Insns.Length != prog.Insns.Length) continue;
            int same = 0;
            for (int i = 0; i < p.Insns.Length; i++)
                if (p.Insns[i] == prog.Insns[i]) same++;
            if (same > best) { best = same; bestFd = fd; }
        }
        return best >= 0 && best * 2 > prog.Insns.Length ? bestFd : null;
    }

    /// <summary>
    /// Copies our map's contents into the kernel's (every entry of ours updated there, entries only the kernel has
    /// deleted), so a comparison starts from equal maps. Prog arrays go through <see cref="CopyProgArray"/>; devmap and
    /// cpumap entries go without a program; maps of maps, xskmaps, ring buffers and frozen .rodata are left as they are.
    /// </summary>
    public void CopyToKernel(BpfMap ours)
    {
        int fd = KernelMapFd(ours);
        switch (ours)
        {
            case BpfProgArrayMap pa:
                if (_progFds.Count > 0) CopyProgArray(pa);
                return;
            case BpfArrayOfMapsMap or BpfHashOfMapsMap:
                CopyMapOfMaps(ours);
                return;
            case BpfRingbufMap:
                return;
        }
        if (ours.Type is BpfMapType.Xskmap) return; // entries are AF_XDP sockets
        if (PerCpu(ours.Type) && ours.UserValueSize != (ours.ValueSize + 7 & ~7) * _cpus)
            throw new InvalidOperationException($"map '{ours.Name}': per-CPU values for {ours.UserValueSize / (ours.ValueSize + 7 & ~7)} CPUs, the kernel has {_cpus}; load the object with BpfKernelObject.PossibleCpus()");
        bool arrayShaped = ours.Type is BpfMapType.Array or BpfMapType.PercpuArray or BpfMapType.Devmap or BpfMapType.Cpumap;
        if (!arrayShaped)
            foreach (var e in ReadKernel(fd, ours.KeySize, ours.ValueSize, ours.Type))
                if (!ours.UserLookup(e.Key, new byte[ours.UserValueSize])) BpfSyscall.DeleteElem(fd, e.Key);
        foreach (var e in ReadOurs(ours))
        {
            if (ours.Type is BpfMapType.Devmap or BpfMapType.DevmapHash or BpfMapType.Cpumap && e.Value.Length == 8)
                BinaryPrimitives.WriteUInt32LittleEndian(e.Value.AsSpan(4), 0); // our prog id is no kernel prog fd
            try { BpfSyscall.UpdateElem(fd, e.Key, e.Value); }
            catch (BpfSyscallException x) when (x.Errno == 1 /* EPERM: frozen */) { return; }
        }
    }

    /// <summary>
    /// Mirrors an array or hash of maps: each inner map of ours gets a kernel map of its own (created once, its contents
    /// copied; <see cref="KernelMapFd(BpfMap)"/> and <see cref="ReadMap"/> then work on it too) whose fd goes into the
    /// kernel's outer map under the same key; a key ours has no map for is deleted there.
    /// </summary>
    public void CopyMapOfMaps(BpfMap outer)
    {
        if (outer.Type is not (BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps))
            throw new ArgumentException($"map '{outer.Name}' is no map of maps", nameof(outer));
        int fd = KernelMapFd(outer);
        Span<byte> value = stackalloc byte[4];
        var key = Array.Empty<byte>();
        var next = new byte[outer.KeySize];
        while (outer.GetNextKey(key, next))
        {
            key = (byte[])next.Clone();
            ulong handle = outer.Lookup(key, 0);
            if (handle == 0 || Object.Space.MapAt(handle) is not { } inner)
            {
                BpfSyscall.DeleteElem(fd, key);
                continue;
            }
            if (!_mapFds.ContainsKey(inner)) CreateMap(inner);
            else CopyToKernel(inner);
            BinaryPrimitives.WriteInt32LittleEndian(value, _mapFds[inner]);
            BpfSyscall.UpdateElem(fd, key, value);
        }
    }

    /// <summary>Copies every map of ours into the kernel (<see cref="CopyToKernel"/>).</summary>
    public void CopyAllToKernel()
    {
        foreach (var m in Object.Maps) CopyToKernel(m);
    }

    /// <summary>The kernel map's entries in BPF_MAP_GET_NEXT_KEY order.</summary>
    public List<BpfMapEntry> ReadMap(BpfMap map) => ReadKernel(KernelMapFd(map), map.KeySize, map.ValueSize, map.Type);

    private List<BpfMapEntry> ReadKernel(int fd, int keySize, int valueSize, BpfMapType type)
    {
        var list = new List<BpfMapEntry>();
        if (type is BpfMapType.Ringbuf) return list;
        int userSize = PerCpu(type) ? (valueSize + 7 & ~7) * _cpus : valueSize;
        var key = Array.Empty<byte>();
        var next = new byte[keySize];
        while (BpfSyscall.GetNextKey(fd, key, next))
        {
            key = (byte[])next.Clone();
            var value = new byte[userSize];
            // An entry can vanish between the two calls (an LRU eviction); such a key is skipped.
            if (!BpfSyscall.LookupElem(fd, key, value)) continue;
            list.Add(Entry(key, value, valueSize, type));
        }
        return list;
    }

    /// <summary>Our map's entries in the same form (GetNextKey order), for comparing with <see cref="ReadMap"/>.</summary>
    public static List<BpfMapEntry> ReadOurs(BpfMap map)
    {
        var list = new List<BpfMapEntry>();
        if (map.Type is BpfMapType.Ringbuf) return list;
        var key = Array.Empty<byte>();
        var next = new byte[map.KeySize];
        while (map.GetNextKey(key, next))
        {
            key = (byte[])next.Clone();
            var value = new byte[map.UserValueSize];
            if (!map.UserLookup(key, value)) continue;
            list.Add(Entry(key, value, map.ValueSize, map.Type));
        }
        return list;
    }

    private static bool PerCpu(BpfMapType t) => t is BpfMapType.PercpuArray or BpfMapType.PercpuHash or BpfMapType.LruPercpuHash;

    private static BpfMapEntry Entry(byte[] key, byte[] value, int valueSize, BpfMapType type)
    {
        if (!PerCpu(type)) return new BpfMapEntry(key, value, null);
        int stride = valueSize + 7 & ~7;
        var cpus = new byte[value.Length / stride][];
        for (int c = 0; c < cpus.Length; c++) cpus[c] = value.AsSpan(c * stride, valueSize).ToArray();
        return new BpfMapEntry(key, value, cpus);
    }

    /// <summary>
    /// BPF_PROG_TEST_RUN of <paramref name="progFd"/> on <paramref name="frame"/>: with <paramref name="ingressIfindex"/>
    /// (and <paramref name="rxQueue"/>) as the ingress device, looked up in <paramref name="netnsPath"/>'s namespace when
    /// given (the calling thread joins it for the call); on CPU <paramref name="cpu"/> when it is not -1 (the thread is
    /// pinned there for the call, so per-CPU maps and bpf_get_smp_processor_id see a known CPU).
    /// </summary>
    public static BpfKernelRun TestRun(int progFd, ReadOnlySpan<byte> frame, uint ingressIfindex = 0, uint rxQueue = 0, uint repeat = 1,
        int cpu = -1, string? netnsPath = null)
    {
        var outp = new byte[frame.Length + 4096];
        BpfSyscall.TestRunResult r = default;
        var input = frame.ToArray();
        void Run() => r = ingressIfindex == 0 && rxQueue == 0
            ? BpfSyscall.TestRun(progFd, input, outp, repeat)
            : BpfSyscall.TestRunXdp(progFd, input, outp, ingressIfindex, rxQueue, repeat);
        if (netnsPath is null && cpu < 0) Run();
        else
        {
            // Joining a namespace or pinning changes only the calling thread: a thread of our own keeps the caller's
            // thread as it was.
            Exception? error = null;
            var t = new Thread(() =>
            {
                try
                {
                    if (cpu >= 0) PinToCpu(cpu);
                    if (netnsPath is not null) JoinNetns(netnsPath);
                    Run();
                }
                catch (Exception e) { error = e; }
            });
            t.Start();
            t.Join();
            if (error is not null) throw error;
        }
        return new BpfKernelRun(r.ReturnValue, outp.AsSpan(0, r.DataOutLength).ToArray(), r.DurationNs);
    }

    /// <summary><see cref="TestRun(int, ReadOnlySpan{byte}, uint, uint, uint, int, string?)"/> of the program in
    /// section (or named) <paramref name="sectionOrName"/>.</summary>
    public BpfKernelRun TestRun(string? sectionOrName, ReadOnlySpan<byte> frame, uint ingressIfindex = 0, uint rxQueue = 0, uint repeat = 1,
        int cpu = -1, string? netnsPath = null)
        => TestRun(ProgramFd(sectionOrName), frame, ingressIfindex, rxQueue, repeat, cpu, netnsPath);

    /// <summary>
    /// Consumes the kernel ring buffer's records, oldest first (as libbpf's ring_buffer__consume): the consumer page is
    /// mapped writable at offset 0, the producer page and the data (mapped twice over, so a record never wraps) read-only
    /// after it; each record is an 8-byte header (length with the busy and discard bits, page offset) and its data,
    /// rounded up to 8 bytes. Discarded records are skipped; a busy one ends the walk.
    /// </summary>
    public List<byte[]> DrainRingbuf(BpfMap ringbuf)
    {
        if (ringbuf.Type != BpfMapType.Ringbuf) throw new ArgumentException($"map '{ringbuf.Name}' is no ring buffer", nameof(ringbuf));
        int fd = KernelMapFd(ringbuf);
        nuint page = (nuint)Environment.SystemPageSize, size = (nuint)ringbuf.MaxEntries;
        nint cons = mmap(0, page, 3 /* PROT_READ | PROT_WRITE */, 1 /* MAP_SHARED */, fd, 0);
        if (cons == -1) throw new InvalidOperationException($"mmap of ring buffer '{ringbuf.Name}': errno {Marshal.GetLastPInvokeError()}");
        nint prod = mmap(0, page + 2 * size, 1 /* PROT_READ */, 1, fd, (long)page);
        if (prod == -1)
        {
            munmap(cons, page);
            throw new InvalidOperationException($"mmap of ring buffer '{ringbuf.Name}' data: errno {Marshal.GetLastPInvokeError()}");
        }
        var records = new List<byte[]>();
        try
        {
            ulong consPos = Volatile.Read(ref *(ulong*)cons), prodPos = Volatile.Read(ref *(ulong*)prod);
            byte* data = (byte*)prod + page;
            ulong mask = (ulong)size - 1;
            while (consPos < prodPos)
            {
                uint hdr = Volatile.Read(ref *(uint*)(data + (consPos & mask)));
                if ((hdr & 0x80000000u) != 0) break; // BPF_RINGBUF_BUSY_BIT: still being written
                uint len = hdr & 0x3fffffffu;
                if ((hdr & 0x40000000u) == 0) records.Add(new ReadOnlySpan<byte>(data + ((consPos + 8) & mask), (int)len).ToArray());
                consPos += (len + 8 + 7) & ~7ul;
            }
            Volatile.Write(ref *(ulong*)cons, consPos);
        }
        finally
        {
            munmap(prod, page + 2 * size);
            munmap(cons, page);
        }
        return records;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(nint addr, nuint length);

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_setaffinity(int pid, nint size, byte* mask);

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    private static unsafe void PinToCpu(int cpu)
    {
        var mask = new byte[Math.Max(128, cpu / 8 + 1)];
        mask[cpu / 8] = (byte)(1 << (cpu % 8));
        fixed (byte* m = mask)
            if (sched_setaffinity(0, mask.Length, m) != 0)
                throw new InvalidOperationException($"sched_setaffinity to CPU {cpu}: errno {Marshal.GetLastPInvokeError()}");
    }

    private static void JoinNetns(string path)
    {
        using var f = File.OpenHandle(path);
        if (setns((int)f.DangerousGetHandle(), 0x40000000 /* CLONE_NEWNET */) != 0)
            throw new InvalidOperationException($"setns {path}: errno {Marshal.GetLastPInvokeError()}");
    }

    public void Dispose()
    {
        foreach (var fd in _progFds.Values) BpfSyscall.Close(fd);
        foreach (var fd in _mapFds.Values) BpfSyscall.Close(fd);
        _progFds.Clear();
        _mapFds.Clear();
    }
}
