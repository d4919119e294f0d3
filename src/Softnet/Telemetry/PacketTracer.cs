using Softnet.Capture;
using Softnet.Filter;
using Softnet.Gro;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Softnet.Xdp;

namespace Softnet.Telemetry;

/// <summary>The stage of the path a trace event was recorded at.</summary>
public enum TraceStage : byte
{
    Arrival,
    Xdp,
    Skb,
    Gro,
    Device,
    Netfilter,
    Conntrack,
    Nat,
    Route,
    Deliver,
    Socket,
    Egress,
    Drop,
    Local,
}

/// <summary>One line of a packet's journey: what one stage did with it.</summary>
public sealed class TraceEvent
{
    /// <summary>The journey (packet) id, <see cref="TraceJourney.Id"/>.</summary>
    public required int Packet { get; init; }
    /// <summary>The path's clock (ns from the first frame, as the skb timestamps count).</summary>
    public required long TimeNs { get; init; }
    public required TraceStage Stage { get; init; }
    /// <summary>The scenario namespace the stage ran in (null on the NIC path).</summary>
    public string? Namespace { get; init; }
    /// <summary>What happened, in the words of the line <see cref="TraceText.Line"/> prints.</summary>
    public required string Text { get; init; }

    // Netfilter rule and policy events.
    public string? Table { get; init; }
    public string? Chain { get; init; }
    /// <summary>1-based rule number in the chain; 0 for a chain policy.</summary>
    public int RuleNumber { get; init; }
    /// <summary>The rule that matched (its counters count this packet); null for a policy and other stages.</summary>
    public Rule? Rule { get; init; }
    public string? RuleText { get; init; }
    public string? Verdict { get; init; }

    /// <summary>Drop events: Softnet's reason and the kernel's SKB_DROP_REASON_* name.</summary>
    public DropReason Reason { get; init; }
    public string? KernelReason { get; init; }
}

/// <summary>One traced packet: where it came from, its first bytes for --trace-pcapng, and its events in order.</summary>
public sealed class TraceJourney
{
    public required int Id { get; init; }
    public required long ArrivalNs { get; init; }
    /// <summary>The frame as it arrived (or, for a packet a namespace made, its IP datagram).</summary>
    public required byte[] Frame { get; init; }
    public required int WireLength { get; init; }
    public required LinkType LinkType { get; init; }
    /// <summary>"port N" for a frame from the capture or a live port, "NS local" for one a namespace generated.</summary>
    public required string Origin { get; init; }
    /// <summary>Frame number in the capture (1-based), 0 for generated packets.</summary>
    public long FrameNumber { get; init; }
    public required string Summary { get; init; }
    public List<TraceEvent> Events { get; } = new(16);

    /// <summary>The last drop recorded for the packet, or None when it was delivered, sent or merged.</summary>
    public DropReason Drop
    {
        get
        {
            for (int i = Events.Count - 1; i >= 0; i--)
                if (Events[i].Stage == TraceStage.Drop) return Events[i].Reason;
            return DropReason.None;
        }
    }
}

/// <summary>
/// `softnet replay --trace EXPR`: the journey of every packet a tcpdump filter selects, one event per stage, in the
/// manner of pwru and `xtables-monitor --trace`. The filter (<see cref="PcapFilter"/>, compiled for the capture's link
/// type) runs once per frame at the port; a selected frame gets a trace id that rides its RX descriptor and then its
/// skb (<see cref="Skb.TraceId"/>), kept by clones, fragments and NAT. Each stage tests that id (one compare) and only
/// for a traced packet asks <see cref="Current"/> to record what it did. Packets a scenario namespace makes itself
/// (replies, ICMP errors, resets) are matched as raw IP at ip_local_out and start journeys of their own.
/// <para>Single-threaded: the replay's deterministic mode (or `softnet run`'s loop) on the thread that called
/// <see cref="Activate"/>.</para>
/// </summary>
public sealed class PacketTracer
{
    public const int DefaultMaxPackets = 100_000;

    [ThreadStatic] private static PacketTracer? t_current;

    /// <summary>The tracer active on this thread (null: tracing off, and nothing asks).</summary>
    public static PacketTracer? Current => t_current;

    private readonly List<TraceJourney> _journeys = new(64);
    private readonly List<TraceEvent> _events = new(1024);
    private readonly Dictionary<LinkType, CompiledBpf?> _programs = new();
    private LinkType _link = (LinkType)uint.MaxValue;
    private CompiledBpf? _program;
    private long _now;
    private string? _hookNs;
    private Func<long>? _clock;

    /// <summary>The path's clock (the NAPI engine's virtual time): events are stamped with it when set, else with the
    /// last arrival.</summary>
    public void UseClock(Func<long>? clock) => _clock = clock;

    private long Now => _clock is { } c ? c() : _now;

    /// <param name="expression">a tcpdump filter expression; null or blank traces every packet</param>
    /// <param name="maxPackets">journeys kept at most; later packets are counted in <see cref="NotKept"/></param>
    public PacketTracer(string? expression, int maxPackets = DefaultMaxPackets)
    {
        Expression = string.IsNullOrWhiteSpace(expression) ? null : expression.Trim();
        if (maxPackets < 1) throw new ArgumentOutOfRangeException(nameof(maxPackets));
        MaxPackets = maxPackets;
        // Compiled now for Ethernet, so a bad expression is an error before the replay starts.
        if (Expression is not null) _programs[LinkType.Ethernet] = CompiledBpf.Compile(PcapFilter.Compile(Expression, LinkType.Ethernet).Program);
    }

    /// <summary>The filter expression (null: every packet).</summary>
    public string? Expression { get; }
    public int MaxPackets { get; }
    /// <summary>Frames and generated packets the filter looked at.</summary>
    public long Examined { get; private set; }
    /// <summary>Packets the filter selected past <see cref="MaxPackets"/>: not traced.</summary>
    public long NotKept { get; private set; }

    public IReadOnlyList<TraceJourney> Journeys => _journeys;
    public IReadOnlyList<TraceEvent> Events => _events;

    /// <summary>Makes this tracer <see cref="Current"/> on the calling thread until the scope is disposed.</summary>
    public Scope Activate()
    {
        var previous = t_current;
        t_current = this;
        return new Scope(previous);
    }

    public readonly struct Scope : IDisposable
    {
        private readonly PacketTracer? _previous;
        internal Scope(PacketTracer? previous) => _previous = previous;
        public void Dispose() => t_current = _previous;
    }

    // ---------------- selection ----------------

    /// <summary>The port's question for each frame: traced or not. Returns the new journey's id, or 0. A frame
    /// costs one run of the compiled filter; only a selected one allocates (its journey and a copy of its bytes).</summary>
    public int Select(ReadOnlySpan<byte> frame, int wireLength, LinkType linkType, long nowNs, int port, long frameNumber = 0)
    {
        Examined++;
        if (Expression is not null)
        {
            if (linkType != _link) LoadProgram(linkType);
            if (_program is null || _program.Run(frame, wireLength) == 0) return 0;
        }
        _now = nowNs;
        return Begin(frame, wireLength, linkType, nowNs, "port " + port, frameNumber);
    }

    private void LoadProgram(LinkType linkType)
    {
        _link = linkType;
        if (!_programs.TryGetValue(linkType, out _program))
        {
            // A link type the compiler does not take selects nothing (the CLI checks the capture's first).
            try { _program = CompiledBpf.Compile(PcapFilter.Compile(Expression!, linkType).Program); }
            catch (FilterException) { _program = null; }
            catch (FilterNotSupportedException) { _program = null; }
            _programs[linkType] = _program;
        }
    }

    /// <summary>ip_local_out / ip6_local_out of a packet a namespace made: matched as raw IP (DLT_RAW), and when the
    /// filter takes it, it starts a journey of its own.</summary>
    public void AdoptLocal(Skb skb, Namespace ns, ReadOnlySpan<byte> l3)
    {
        Examined++;
        if (Expression is not null)
        {
            if (!_programs.TryGetValue(LinkType.Raw, out var raw))
            {
                try { raw = CompiledBpf.Compile(PcapFilter.Compile(Expression, LinkType.Raw).Program); }
                catch (Exception e) when (e is FilterException or FilterNotSupportedException) { raw = null; }
                _programs[LinkType.Raw] = raw;
            }
            if (raw is null || raw.Run(l3, l3.Length) == 0) return;
        }
        int id = Begin(l3, l3.Length, LinkType.Raw, Now, ns.Name + " local", 0);
        if (id == 0) return;
        skb.TraceId = id;
        Add(id, TraceStage.Local, ns.Name, "ip_local_out: made by " + ns.Name + " " + TraceText.Summary(l3, LinkType.Raw));
    }

    private int Begin(ReadOnlySpan<byte> frame, int wireLength, LinkType linkType, long nowNs, string origin, long frameNumber)
    {
        if (_journeys.Count >= MaxPackets)
        {
            NotKept++;
            return 0;
        }
        var j = new TraceJourney
        {
            Id = _journeys.Count + 1,
            ArrivalNs = nowNs,
            Frame = frame.ToArray(),
            WireLength = wireLength,
            LinkType = linkType,
            Origin = origin,
            FrameNumber = frameNumber,
            Summary = TraceText.Summary(frame, linkType),
        };
        _journeys.Add(j);
        return j.Id;
    }

    /// <summary>The journey of a trace id (null for 0 or an id of another tracer).</summary>
    public TraceJourney? Journey(int id) => (uint)(id - 1) < (uint)_journeys.Count ? _journeys[id - 1] : null;

    private TraceEvent Add(int id, TraceStage stage, string? ns, string text)
    {
        var e = new TraceEvent { Packet = id, TimeNs = TimeFor(id), Stage = stage, Namespace = ns, Text = text };
        Append(e);
        return e;
    }

    /// <summary>The clock for an event of packet <paramref name="id"/>: the engine's clock may lag the arrival time the
    /// port stamped (it moves per poll), so a journey's times never go back.</summary>
    private long TimeFor(int id)
    {
        long t = Now;
        if (Journey(id) is { Events.Count: > 0 } j && j.Events[^1].TimeNs > t) t = j.Events[^1].TimeNs;
        return t;
    }

    private void Append(TraceEvent e)
    {
        _events.Add(e);
        Journey(e.Packet)?.Events.Add(e);
    }

    /// <summary>The path's clock moved (a frame entered the scenario's stack).</summary>
    public void SetClock(long nowNs)
    {
        if (nowNs > _now) _now = nowNs;
    }

    // ---------------- the NIC path ----------------

    /// <summary>The port DMAs the frame into a queue's ring (ice's descriptor write).</summary>
    public void Arrival(int id, int queue, int cpu, int slot, uint rssHash, int length)
    {
        var j = Journey(id);
        if (j is null) return;
        Append(new TraceEvent { Packet = id, TimeNs = j.ArrivalNs, Stage = TraceStage.Arrival, Text = $"{j.Origin} queue {queue} cpu {cpu} ring slot {slot} len {length} rss 0x{rssHash:x8}: {j.Summary}" });
    }

    /// <summary>The queue's XDP program ran (ice_run_xdp).</summary>
    public void XdpVerdict(int id, XdpAction verdict, int headMoved, int lengthChange)
    {
        string name = verdict switch
        {
            XdpAction.Pass => "XDP_PASS",
            XdpAction.Drop => "XDP_DROP",
            XdpAction.Tx => "XDP_TX",
            XdpAction.Redirect => "XDP_REDIRECT",
            XdpAction.Aborted => "XDP_ABORTED",
            _ => $"verdict {(int)verdict}",
        };
        string moved = headMoved != 0 || lengthChange != 0 ? $" (data moved {headMoved:+#;-#;0}, length {lengthChange:+#;-#;0})" : "";
        string end = verdict switch { XdpAction.Tx => ": sent back out of the port", XdpAction.Redirect => ": redirected", _ => "" };
        Add(id, TraceStage.Xdp, null, name + moved + end);
        if (verdict == XdpAction.Drop) Drop(id, null, DropReason.XdpDrop);
        else if (verdict != XdpAction.Pass && verdict is not (XdpAction.Tx or XdpAction.Redirect)) Drop(id, null, DropReason.XdpAborted);
    }

    /// <summary>The driver built the skb (ice_build_skb / ice_construct_skb).</summary>
    public void SkbBuilt(Skb skb, int queue, string how)
    {
        string gso = skb.GsoSegs > 1 ? $" gso {skb.GsoSegs}x{skb.GsoSize}" : "";
        Add(skb.TraceId, TraceStage.Skb, null, $"{how} len {skb.Len} queue {queue} hash 0x{skb.Hash:x8}{gso}");
    }

    /// <summary>napi_gro_receive's answer for the packet.</summary>
    /// <param name="mergedInto">The trace id of the held skb a merge went into (0: a packet not traced).</param>
    public void GroReceived(int id, GroResult result, int mergedInto = 0)
    {
        string into = mergedInto != 0 ? $"#{mergedInto}'s skb (the held head of its flow)" : "the held skb of its flow (an untraced packet)";
        string? text = result switch
        {
            GroResult.Held => "held: head of a new flow (dev_gro_receive)",
            GroResult.Merged => $"merged into {into}, chained on its frag_list; goes up inside it",
            GroResult.MergedFree => $"merged into {into}, its data moved there (NAPI_GRO_FREE); goes up inside it",
            _ => null,
        };
        if (text is not null) Add(id, TraceStage.Gro, null, text);
    }

    /// <summary>A held skb left GRO (napi_gro_complete).</summary>
    public void GroFlushed(int id, GroFlushReason reason, int segments)
        => Add(id, TraceStage.Gro, null, $"flushed ({DropReasons.ToSnake(reason.ToString())}) with {segments} segment{(segments == 1 ? "" : "s")}");

    /// <summary>GRO passed the skb up unmerged (gro_normal_one).</summary>
    public void GroNormal(int id, GroNormalReason reason)
        => Add(id, TraceStage.Gro, null, reason == GroNormalReason.None ? "passed up" : $"passed up unmerged ({DropReasons.ToSnake(reason.ToString())})");

    // ---------------- devices and namespaces ----------------

    /// <summary>__netif_receive_skb_core on a scenario device.</summary>
    public void DeviceRx(Skb skb, Device dev)
    {
        string port = dev.Master is { } m ? $", port of {m.Name}" : "";
        Add(skb.TraceId, TraceStage.Device, dev.Namespace.Name, $"rx {dev.Name} ({dev.Kind.Name}{port}) len {skb.Len}");
    }

    /// <summary>dev_queue_xmit on a scenario device: a crossing to the veth peer, a bridge port, or the way out.</summary>
    public void DeviceTx(Skb skb, Device dev)
    {
        string where = dev.Peer is { } peer ? $" -> {peer.Namespace.Name}:{peer.Name}" : "";
        bool leaves = dev.Kind is LiveLink || (dev.Kind is VethLink && dev.Peer is null);
        Add(skb.TraceId, leaves ? TraceStage.Egress : TraceStage.Device, dev.Namespace.Name,
            (leaves ? $"{dev.Name} ({dev.Kind.Name}): leaves the scenario" : $"tx {dev.Name} ({dev.Kind.Name})") + where + $" len {skb.Len}");
    }

    // ---------------- netfilter ----------------

    /// <summary>NF_HOOK begins in <paramref name="ns"/>: its rule events name the namespace; returns the packet's tuple
    /// before the hook, to tell what NAT changed.</summary>
    public string HookBegin(Namespace ns, ReadOnlySpan<byte> l3)
    {
        _hookNs = ns.Name;
        return TraceText.Tuple(l3);
    }

    /// <summary>A rule matched: its counters just counted this packet (ipt_do_table).</summary>
    public void NfRule(int id, IptTable table, HookPoint hook, Chain chain, int index, Rule rule)
    {
        string verdict = rule.Action switch
        {
            RuleAction.None => "CONTINUE",
            RuleAction.Accept => "ACCEPT",
            RuleAction.Drop => "DROP",
            RuleAction.Return => "RETURN",
            RuleAction.Jump => "JUMP " + rule.JumpChain?.Name,
            RuleAction.Goto => "GOTO " + rule.JumpChain?.Name,
            _ => rule.Target?.Name ?? rule.ChainTarget ?? "TARGET",
        };
        string text = "-A " + chain.Name + rule.Render();
        Append(new TraceEvent
        {
            Packet = id,
            TimeNs = TimeFor(id),
            Stage = TraceStage.Netfilter,
            Namespace = _hookNs,
            Text = $"{table.Name} {chain.Name} rule {index + 1} ({TraceText.HookName(hook)}): {text} => {verdict}",
            Table = table.Name,
            Chain = chain.Name,
            RuleNumber = index + 1,
            Rule = rule,
            RuleText = text,
            Verdict = verdict,
        });
    }

    /// <summary>A built-in chain ended in its policy.</summary>
    public void NfPolicy(int id, IptTable table, HookPoint hook, Chain chain)
    {
        string verdict = chain.Policy == Netfilter.Verdict.Drop ? "DROP" : "ACCEPT";
        Append(new TraceEvent
        {
            Packet = id,
            TimeNs = TimeFor(id),
            Stage = TraceStage.Netfilter,
            Namespace = _hookNs,
            Text = $"{table.Name} {chain.Name} policy ({TraceText.HookName(hook)}) => {verdict}",
            Table = table.Name,
            Chain = chain.Name,
            Verdict = verdict,
        });
    }

    /// <summary>NF_HOOK is done: the conntrack entry the packet carries (where nf_conntrack_in ran) and what NAT
    /// changed of its tuple. The id stays: the same skb goes on.</summary>
    public void HookDone(int id, Namespace ns, HookPoint hook, string before, ReadOnlySpan<byte> l3, Connection? ct, CtInfo info, Verdict verdict)
    {
        if (hook is HookPoint.PreRouting or HookPoint.LocalOut)
        {
            if (info == CtInfo.Untracked) Add(id, TraceStage.Conntrack, ns.Name, "untracked (NOTRACK)");
            else if (ct is not null)
            {
                string state = ct.Original.Protocol == IpProtocols.Tcp ? " " + TraceText.Upper(ct.TcpState.ToString()) : "";
                Add(id, TraceStage.Conntrack, ns.Name, $"{TraceText.CtInfoName(info)}{state} orig {ct.Original} reply {ct.Reply}");
            }
            else if (verdict == Netfilter.Verdict.Accept && ns.Netfilter.ConntrackEnabled) Add(id, TraceStage.Conntrack, ns.Name, "invalid (no entry)");
        }
        string after = TraceText.Tuple(l3);
        if (after != before) Add(id, TraceStage.Nat, ns.Name, $"{TraceText.HookName(hook)}: {before} => {after}");
    }

    // ---------------- routing and delivery ----------------

    /// <summary>ip_route_input_slow's decision.</summary>
    public void RouteInput(int id, Namespace ns, Ip.Route? route, bool forwarding)
    {
        string text = route is null ? "no route"
            : route.Type switch
            {
                Ip.RouteKind.Local => $"local ({route})",
                Ip.RouteKind.Broadcast => $"broadcast ({route})",
                Ip.RouteKind.Unicast => (forwarding ? "forward " : "forward refused, ip_forward off ") + $"({route})",
                _ => $"{TraceText.Lower(route.Type.ToString())} ({route})",
            };
        Add(id, TraceStage.Route, ns.Name, text);
    }

    /// <summary>ip_local_deliver_finish hands the datagram to its protocol.</summary>
    public void LocalDeliver(int id, Namespace ns, byte protocol)
        => Add(id, TraceStage.Deliver, ns.Name, "ip_local_deliver_finish: " + TraceText.ProtocolName(protocol));

    /// <summary>The end of the path without a scenario: the decode stack took the packet.</summary>
    public void Delivered(int id, string text) => Add(id, TraceStage.Deliver, null, text);

    /// <summary>The socket that took the packet.</summary>
    public void Socket(int id, Namespace ns, string kind, string line)
        => Add(id, TraceStage.Socket, ns.Name, $"{kind}: {line}");

    /// <summary>kfree_skb_reason. A second report of the same drop (a caller counting what its callee already
    /// reported) is ignored.</summary>
    public void Drop(int id, Namespace? ns, DropReason reason)
    {
        var j = Journey(id);
        if (j is null) return;
        if (j.Events.Count > 0 && j.Events[^1] is { Stage: TraceStage.Drop } last && last.Reason == reason) return;
        string kernel = KernelDropReasons.Name(reason);
        Append(new TraceEvent
        {
            Packet = id,
            TimeNs = TimeFor(id),
            Stage = TraceStage.Drop,
            Namespace = ns?.Name,
            Text = $"{kernel} ({DropReasons.Name(reason)})",
            Reason = reason,
            KernelReason = kernel,
        });
    }

    // ---------------- output ----------------

    /// <summary>Text of the first <paramref name="maxPackets"/> journeys, one line per event (what the HTML report shows).</summary>
    public IReadOnlyList<string> TextLines(int maxPackets = int.MaxValue)
    {
        var lines = new List<string>();
        for (int i = 0; i < _journeys.Count && i < maxPackets; i++)
            foreach (var e in _journeys[i].Events) lines.Add(TraceText.Line(e));
        return lines;
    }

    /// <summary>Every journey, packet after packet.</summary>
    public string Format() => TraceText.Format(this);

    /// <summary>The tcpdump filter as one compiled matcher: the program compiled to a delegate (<see cref="BpfJit"/>),
    /// or the interpreter when the program uses what the compiler leaves out.</summary>
    private sealed class CompiledBpf
    {
        private readonly BpfJit.Matcher? _jit;
        private readonly BpfInsn[] _program;

        private CompiledBpf(BpfInsn[] program, BpfJit.Matcher? jit)
        {
            _program = program;
            _jit = jit;
        }

        public static CompiledBpf Compile(ReadOnlySpan<BpfInsn> program) => new(program.ToArray(), BpfJit.TryCompile(program));

        public uint Run(ReadOnlySpan<byte> frame, int wireLength)
            => _jit is not null ? BpfJit.Run(_jit, frame, wireLength) : ClassicBpf.Run(_program, frame, wireLength);
    }
}
