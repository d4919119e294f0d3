using System.Buffers.Binary;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;

namespace Softnet.Xdp;

/// <summary>
/// An eBPF program attached to a device as the kernel attaches one (dev_xdp_attach): the one program and its object's
/// address space (maps and global data, shared by every queue as the kernel shares them) run on every RX queue, each
/// queue with its own interpreter and <see cref="BpfRunContext"/> (the NAPI CPU, the replay clock, the per-CPU
/// redirect info and random state), so a run allocates nothing.
/// </summary>
public sealed class XdpBpfAttachment(BpfProgram program, BpfRegionTable? space = null) : XdpAttachment
{
    public BpfProgram Program { get; } = program;

    /// <summary>
    /// Which engine runs the program: the JIT (the default, as the kernel's bpf_jit_enable is on x86), compiled once
    /// and shared by every queue, or the reference interpreter.
    /// </summary>
    public BpfEngine Engine { get; init; } = BpfEngine.Jit;

    private BpfJitProgram? _jit;
    private BpfJitProgram Jit => _jit ??= BpfJit.Compile(Program);

    /// <summary>The object the program came from (its maps), when loaded from one.</summary>
    public Bpf.Elf.BpfObject? Object { get; init; }

    /// <summary>
    /// Splits a "PROG.o[:SECTION]" argument: the object's path and the program's section or function name (null:
    /// the object's first XDP program). Section names hold '/' and ':' only after the ".o".
    /// </summary>
    public static (string Path, string? Section) ParseSpec(string spec)
    {
        if (File.Exists(spec)) return (spec, null);
        int i = spec.LastIndexOf(".o:", StringComparison.Ordinal);
        if (i < 0) return (spec, null);
        string section = spec[(i + 3)..];
        return (spec[..(i + 2)], section.Length == 0 ? null : section);
    }

    /// <summary>
    /// Opens an object and verifies one program as XDP with every XDP helper (bpf_object__open + load). A damaged
    /// object or a refused program is an <see cref="ArgumentException"/> naming the file, section and instruction.
    /// </summary>
    public static (Bpf.Elf.BpfObject Object, BpfProgram Program) LoadProgram(string spec, int possibleCpus = 0)
    {
        var (path, section) = ParseSpec(spec);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such object file", path);
        Bpf.Elf.BpfObject obj;
        try
        {
            obj = Bpf.Elf.BpfObject.Load(path, possibleCpus);
        }
        catch (Bpf.Elf.BpfObjectException e)
        {
            throw new ArgumentException($"{path}: {e.Message}");
        }
        Bpf.Elf.BpfObjectProgram p;
        try
        {
            p = obj.Program(section);
        }
        catch (Bpf.Elf.BpfObjectException e)
        {
            throw new ArgumentException($"{path}: {e.Message}");
        }
        try
        {
            return (obj, BpfVerifier.Verify(p.Insns, obj.XdpOptions(Bpf.Helpers.BpfXdpHelpers.Table())));
        }
        catch (BpfVerifierException e)
        {
            throw new ArgumentException($"{path}: {p.Section}:{(e.Insn >= 0 ? e.Insn + ": " : "")}{e.Reason} (the verifier refused program {p.Name})");
        }
    }

    /// <summary>`--xdp PROG.o[:SECTION]`: an attachment running the object's program on every queue.</summary>
    public static XdpBpfAttachment Load(string spec, BpfEngine engine = BpfEngine.Jit, int possibleCpus = 0)
    {
        var (obj, prog) = LoadProgram(spec, possibleCpus);
        return new XdpBpfAttachment(prog, obj.Space) { Object = obj, Engine = engine };
    }
    public BpfRegionTable? Space { get; } = space;

    /// <summary>xdp_md.ingress_ifindex: the device's ifindex (2, the first device after lo, unless told; a scenario
    /// replay sets the injected device's). Set before the replay starts, as are <see cref="Fib"/> and <see cref="Devices"/>.</summary>
    public int Ifindex { get; set; } = 2;

    /// <summary>Seed of bpf_get_prandom_u32 (each queue's state mixes in its CPU).</summary>
    public ulong Seed { get; init; }

    /// <summary>Where bpf_trace_printk writes (trace_pipe lines), or null.</summary>
    public TextWriter? Trace { get; init; }

    /// <summary>bpf_fib_lookup's namespace, or null.</summary>
    public Bpf.Helpers.IBpfFib? Fib { get; set; }

    /// <summary>
    /// The device an ifindex names for XDP_REDIRECT (bpf_redirect's ifindex, or a devmap slot's ifindex), or null for
    /// none; without a resolver every redirect goes to the port's transmit side (the tx capture).
    /// </summary>
    public Func<int, IXdpTransmit?>? Devices { get; set; }

    /// <summary>The hooks made so far (one per queue), for tests and reports.</summary>
    public IReadOnlyList<Hook> Hooks => _hooks;
    private readonly List<Hook> _hooks = [];

    public override XdpQueueHook CreateHook(int queue, int cpu, IXdpTransmit? tx)
    {
        if (Engine == BpfEngine.Jit) lock (_hooks) _ = Jit;
        var h = new Hook(this, cpu, tx);
        lock (_hooks) _hooks.Add(h);
        return h;
    }

    /// <summary>One queue's instance: interpreter, run context, clock.</summary>
    public sealed class Hook : XdpQueueHook
    {
        private readonly XdpBpfAttachment _a;
        private readonly BpfInterpreter? _vm;
        private readonly BpfJitProgram? _jit;
        private readonly BpfJitStack? _jitStack;
        private readonly IXdpTransmit? _tx;
        private long _nowNs;

        internal Hook(XdpBpfAttachment a, int cpu, IXdpTransmit? tx)
        {
            _a = a;
            _tx = tx;
            if (a.Engine == BpfEngine.Jit)
            {
                _jit = a.Jit;
                _jitStack = new BpfJitStack();
            }
            else _vm = new BpfInterpreter();
            Context = new BpfRunContext
            {
                Cpu = cpu,
                Seed = a.Seed,
                TraceWriter = a.Trace,
                Fib = a.Fib,
            };
            Context.NowNs = () => (ulong)_nowNs;
        }

        /// <summary>The helpers' per-NAPI state of this queue.</summary>
        public BpfRunContext Context { get; }

        /// <summary>Runs that faulted (XDP_ABORTED), and the last fault, for diagnostics.</summary>
        public long Faults { get; private set; }
        public BpfRunResult LastFault { get; private set; }

        public override XdpAction Run(ref XdpBuff xdp, long nowNs)
        {
            _nowNs = nowNs;
            BpfRunResult r;
            var action = _jit is not null
                ? _jit.RunXdp(_jitStack!, ref xdp, (uint)_a.Ifindex, Context, _a.Space, out r)
                : _vm!.RunXdp(_a.Program, ref xdp, (uint)_a.Ifindex, Context, _a.Space, out r);
            if (!r.Ok)
            {
                Faults++;
                LastFault = r;
            }
            return action;
        }

        /// <summary>xdp_do_redirect: the bpf_redirect_info the program left, consumed. A devmap slot resolves to the
        /// ifindex stored in it; an ifindex to the device the attachment's resolver names (or the port's transmit side).</summary>
        public override IXdpTransmit? TakeRedirect()
        {
            var ctx = Context;
            int ifindex = (int)ctx.RedirectIfindex;
            var map = ctx.RedirectMap;
            uint key = ctx.RedirectKey;
            ctx.ClearRedirect();
            if (map is not null)
            {
                if (map.Type is not (BpfMapType.Devmap or BpfMapType.DevmapHash)) return null;
                Span<byte> k = stackalloc byte[4];
                Span<byte> v = stackalloc byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(k, key);
                if (map.UserValueSize > v.Length || !map.UserLookup(k, v[..map.UserValueSize])) return null;
                ifindex = (int)BinaryPrimitives.ReadUInt32LittleEndian(v); // struct bpf_devmap_val starts with the ifindex
            }
            if (ifindex == 0) return null;
            return _a.Devices is { } resolve ? resolve(ifindex) : _tx;
        }
    }
}
