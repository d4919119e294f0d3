using System.Buffers.Binary;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Gro;

/// <summary>
/// Counters of one <see cref="GroEngine"/>: packets held/merged/passed up, why held skbs completed (end of poll,
/// age, eviction, or the flush rule that refused a merge), why packets went up unmerged, a histogram of segments
/// per delivered skb and the merge ratio per flow. Written under the report's "gro" key.
/// </summary>
public sealed class GroStats : IReportSection
{
    /// <summary>Histogram slots: 1..63 segments exactly, the last slot 64 or more.</summary>
    public const int HistogramSlots = 65;

    private readonly GroOptions _options;
    private readonly long[] _flushed = new long[Enum.GetValues<GroFlushReason>().Length];
    private readonly long[] _normal = new long[Enum.GetValues<GroNormalReason>().Length];
    private readonly long[] _histogram = new long[HistogramSlots];
    private readonly Dictionary<uint, FlowCounters> _flows = new();
    // The flows counted lately, two per set by key: a delivered skb nearly always belongs to a flow seen a moment ago,
    // so the dictionary is searched only when a flow first shows up or a third live flow lands in a set (with one way,
    // two interleaved flows sharing a slot missed on every packet; moving the way hit to the front on every hit, as
    // before, cost the stores and their GC write barriers on every packet of two flows interleaving in a set).
    private const int RecentSets = 64;
    private readonly RecentFlow[] _recent = new RecentFlow[RecentSets * 2];

    private struct RecentFlow
    {
        public uint Key;
        public FlowCounters? Flow;
    }

    // Ahead of that, the flows of TCP/UDP over option-less IPv4 by the RSS hash the skb already carries (skb->hash):
    // a hit is confirmed against every input of the flow key (addresses, protocol, ports), so it names the flow the
    // hash would, and the key is computed only on a miss. A skb without a hash (no RSS) fills no slot.
    private const int TupleSlots = 128;
    private readonly TupleFlow[] _byRss = new TupleFlow[TupleSlots];
    // The tuple names the key only where the key is computed from the delivered headers (not the Hash variant's
    // receive-time key).
    private readonly bool _tupleCache;

    private struct TupleFlow
    {
        public ulong Addrs;
        public uint Ports;
        public uint Key;
        public FlowCounters? Flow;
        // A hit counts here, in the slot it has just compared, rather than in the flow's own object (a dependent load
        // and a store to another line on every delivered skb). The counts move to Flow when the slot changes hands;
        // readers add them in without moving them (FlowsWithSlots).
        public long Skbs, Segments;
        public byte Proto;
    }

    internal GroStats(GroOptions options)
    {
        _options = options;
        _perFlow = options.PerFlowStats;
        _hashMode = options.Mode == GroMode.Hash;
        _tupleCache = _perFlow && !_hashMode;
    }

    // Options read per delivered skb, copied out of the options object.
    private readonly bool _perFlow, _hashMode;

    public string Key => "gro";

    public long Received;
    public long Held;
    public long Merged;
    public long AcksCoalesced;
    public long FragListMerges;
    public long CompleteFailed;
    public long Batches;
    public long DeliveredSkbs;
    public long DeliveredSegments;

    public long Normal
    {
        get
        {
            long n = 0;
            foreach (long v in _normal) n += v;
            return n;
        }
    }

    public long Flushed(GroFlushReason reason) => _flushed[(int)reason];
    public long NormalBy(GroNormalReason reason) => _normal[(int)reason];
    /// <summary>Delivered skbs made of <paramref name="segments"/> segments (64 = 64 or more).</summary>
    internal long Histogram(int segments) => _histogram[Math.Clamp(segments, 1, HistogramSlots - 1)];
    public double MergeRatio => DeliveredSkbs == 0 ? 0 : (double)DeliveredSegments / DeliveredSkbs;
    /// <summary>The per-flow counters, the RSS slots' counts added in.</summary>
    internal IReadOnlyDictionary<uint, FlowCounters> Flows => FlowsWithSlots();

    internal void CountFlush(GroFlushReason reason, Skb skb) => _flushed[(int)reason]++;

    internal void CountNormal(GroNormalReason reason) => _normal[(int)reason]++;

    internal unsafe void CountDelivered(Skb skb, int segs)
    {
        int count = Math.Max((int)skb.Gro.Count, 1);
        DeliveredSkbs++;
        DeliveredSegments += count;
        _histogram[Math.Min(count, HistogramSlots - 1)]++;
        if (!_perFlow) return;
        // The index is masked below the table's fixed length: no bounds check.
        ref TupleFlow t = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_byRss), (int)(skb.Hash & (TupleSlots - 1)));
        // The slot's protocol is TCP or UDP, so a match means FlowHash would mix in the same type, addresses,
        // protocol and ports: the same key, so the same counters.
        if (_tupleCache)
        {
            byte* d = TupleHeader(skb);
            if (d != null && d[9] == t.Proto && GroEngine.Raw64(d + 12) == t.Addrs && Unsafe.ReadUnaligned<uint>(d + 20) == t.Ports
                && t.Flow is not null)
            {
                t.Skbs++;
                t.Segments += count;
                return;
            }
        }
        var f = FlowOf(skb, ref t);
        f.Skbs++;
        f.Segments += count;
    }

    /// <summary>The flows with what the RSS slots hold added in, read without moving it (the engine may still be
    /// counting): the flows themselves while no slot holds any, else a copy.</summary>
    private Dictionary<uint, FlowCounters> FlowsWithSlots()
    {
        foreach (ref readonly TupleFlow t in _byRss.AsSpan())
        {
            if (t.Flow is not null && (t.Skbs | t.Segments) != 0)
            {
                var copy = new Dictionary<uint, FlowCounters>();
                AddFlows(copy, this);
                return copy;
            }
        }
        return _flows;
    }

    /// <summary>Adds <paramref name="o"/>'s flows, and the counts its RSS slots hold, into <paramref name="into"/>.</summary>
    private static void AddFlows(Dictionary<uint, FlowCounters> into, GroStats o)
    {
        foreach (var (key, f) in o._flows) Add(key, f.Name, f.Segments, f.Skbs);
        foreach (ref readonly TupleFlow t in o._byRss.AsSpan())
            if (t.Flow is { } f && (t.Skbs | t.Segments) != 0) Add(t.Key, f.Name, t.Segments, t.Skbs);

        void Add(uint key, string name, long segments, long skbs)
        {
            if (!into.TryGetValue(key, out var mine)) into.Add(key, mine = new FlowCounters(name));
            mine.Segments += segments;
            mine.Skbs += skbs;
        }
    }

    /// <summary>The flow of a skb the RSS slot did not name: by its key, through the recent sets and the
    /// dictionary; a TCP/UDP over option-less IPv4 skb with a hash then takes the slot.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe FlowCounters FlowOf(Skb skb, ref TupleFlow t)
    {
        uint key = skb.Gro.FlowKey != 0 && _hashMode ? skb.Gro.FlowKey : FlowHash.Compute(skb);
        // A hit in either way of the set changes nothing there (two flows sharing a set both stay, with no stores).
        ref RecentFlow way = ref _recent[(int)(key & (RecentSets - 1)) * 2];
        FlowCounters? f = way.Key == key ? way.Flow : null;
        if (f is null)
        {
            ref RecentFlow other = ref Unsafe.Add(ref way, 1);
            f = other.Key == key ? other.Flow : null;
            f ??= RecentFlowMiss(ref way, key, skb);
        }
        if (_tupleCache && skb.HashType != PktHashType.None)
        {
            byte* d = TupleHeader(skb);
            if (d != null && (d[9] == IpProtocols.Tcp || d[9] == IpProtocols.Udp))
            {
                if (t.Flow is { } old)
                {
                    old.Skbs += t.Skbs;
                    old.Segments += t.Segments;
                }
                t.Skbs = t.Segments = 0;
                t.Key = key;
                t.Addrs = GroEngine.Raw64(d + 12);
                t.Ports = Unsafe.ReadUnaligned<uint>(d + 20);
                t.Proto = d[9];
                t.Flow = f;
            }
        }
        return f;
    }

    /// <summary>The IPv4 header of a skb the RSS slots can name: option-less, with its first four transport bytes (the
    /// ports) in the head and within the datagram; null for any other.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe byte* TupleHeader(Skb skb)
    {
        if (skb.Protocol != EtherTypes.Ipv4 || skb.HeadLen < 24) return null;
        byte* d = skb.DataAddress;
        return d[0] == 0x45 && GroEngine.Be16(d + 2) >= 24 ? d : null;
    }

    /// <summary>A flow in neither way of its set: found in (or added to) the dictionary and made the set's first way,
    /// the one it displaces the second.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private FlowCounters RecentFlowMiss(ref RecentFlow first, uint key, Skb skb)
    {
        if (!_flows.TryGetValue(key, out var f))
        {
            f = new FlowCounters(Describe(skb));
            _flows.Add(key, f);
        }
        Unsafe.Add(ref first, 1) = first;
        first.Key = key;
        first.Flow = f;
        return f;
    }

    /// <summary>Segments and skbs delivered for one flow.</summary>
    public sealed class FlowCounters(string name)
    {
        public string Name { get; } = name;
        public long Segments;
        public long Skbs;
        public double MergeRatio => Skbs == 0 ? 0 : (double)Segments / Skbs;
    }

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("mode", _options.Mode.ToString().ToLowerInvariant());
        w.WriteNumber("received", Received);
        w.WriteNumber("held", Held);
        w.WriteNumber("merged", Merged);
        w.WriteNumber("normal", Normal);
        w.WriteNumber("acks_coalesced", AcksCoalesced);
        w.WriteNumber("frag_list_merges", FragListMerges);
        w.WriteNumber("delivered_skbs", DeliveredSkbs);
        w.WriteNumber("delivered_segments", DeliveredSegments);
        w.WriteNumber("batches", Batches);
        w.WriteNumber("merge_ratio", Math.Round(MergeRatio, 4));
        w.WriteStartObject("flushed");
        w.WriteNumber("poll_end", Flushed(GroFlushReason.PollEnd));
        w.WriteNumber("aged", Flushed(GroFlushReason.Aged));
        w.WriteNumber("evicted_oldest", Flushed(GroFlushReason.EvictedOldest));
        w.WriteStartObject("flush_rule");
        foreach (GroFlushReason r in Enum.GetValues<GroFlushReason>())
        {
            if (r is GroFlushReason.PollEnd or GroFlushReason.Aged or GroFlushReason.EvictedOldest) continue;
            w.WriteNumber(SnakeCase(r.ToString()), Flushed(r));
        }
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteStartObject("normal_by_reason");
        foreach (GroNormalReason r in Enum.GetValues<GroNormalReason>())
        {
            if (r == GroNormalReason.None || NormalBy(r) == 0) continue;
            w.WriteNumber(SnakeCase(r.ToString()), NormalBy(r));
        }
        w.WriteEndObject();
        w.WriteStartObject("segments_per_skb");
        for (int i = 1; i < HistogramSlots; i++)
        {
            if (_histogram[i] == 0) continue;
            w.WriteNumber(i == HistogramSlots - 1 ? "64+" : i.ToString(System.Globalization.CultureInfo.InvariantCulture), _histogram[i]);
        }
        w.WriteEndObject();
        w.WriteStartArray("flows");
        foreach (var f in FlowsWithSlots().Values.OrderByDescending(f => f.Segments).Take(64))
        {
            w.WriteStartObject();
            w.WriteString("flow", f.Name);
            w.WriteNumber("segments", f.Segments);
            w.WriteNumber("skbs", f.Skbs);
            w.WriteNumber("merge_ratio", Math.Round(f.MergeRatio, 4));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    internal static string SnakeCase(string name) => Packets.DropReasons.ToSnake(name);

    /// <summary>Adds another engine's counters (one engine per NAPI instance; the report shows their sum).</summary>
    public void AddFrom(GroStats o)
    {
        Received += o.Received; Held += o.Held; Merged += o.Merged; AcksCoalesced += o.AcksCoalesced;
        FragListMerges += o.FragListMerges; CompleteFailed += o.CompleteFailed; Batches += o.Batches;
        DeliveredSkbs += o.DeliveredSkbs; DeliveredSegments += o.DeliveredSegments;
        for (int i = 0; i < _flushed.Length; i++) _flushed[i] += o._flushed[i];
        for (int i = 0; i < _normal.Length; i++) _normal[i] += o._normal[i];
        for (int i = 0; i < _histogram.Length; i++) _histogram[i] += o._histogram[i];
        AddFlows(_flows, o);
    }

    /// <summary>A stats object to sum engines into.</summary>
    public static GroStats Empty(GroOptions options) => new(options);

    /// <summary>"src:port > dst:port proto" from the headers at skb->data (after any VLAN tags).</summary>
    private static string Describe(Skb skb)
    {
        ReadOnlySpan<byte> d = skb.LinearData;
        int off = 0;
        ushort type = skb.Protocol;
        while ((type == EtherTypes.Vlan || type == EtherTypes.QinQ) && d.Length >= off + 4)
        {
            type = BinaryPrimitives.ReadUInt16BigEndian(d.Slice(off + 2));
            off += 4;
        }
        string src, dst;
        byte proto;
        int l4;
        if (type == EtherTypes.Ipv4 && d.Length >= off + 20)
        {
            src = new IPAddress(d.Slice(off + 12, 4)).ToString();
            dst = new IPAddress(d.Slice(off + 16, 4)).ToString();
            proto = d[off + 9];
            l4 = off + (d[off] & 0x0F) * 4;
        }
        else if (type == EtherTypes.Ipv6 && d.Length >= off + 40)
        {
            src = "[" + new IPAddress(d.Slice(off + 8, 16)) + "]";
            dst = "[" + new IPAddress(d.Slice(off + 24, 16)) + "]";
            proto = d[off + 6];
            l4 = off + 40;
        }
        else return $"ethertype 0x{type:x4}";
        string name = proto switch { 6 => "tcp", 17 => "udp", _ => "proto " + proto };
        if ((proto == 6 || proto == 17) && d.Length >= l4 + 4)
            return $"{src}:{BinaryPrimitives.ReadUInt16BigEndian(d.Slice(l4))} > {dst}:{BinaryPrimitives.ReadUInt16BigEndian(d.Slice(l4 + 2))} {name}";
        return $"{src} > {dst} {name}";
    }
}
