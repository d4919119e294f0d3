using System.Text.Json;
using Softnet.Packets;

namespace Softnet.Telemetry;

/// <summary>Per-protocol packet counts as the replay summary and JSON report show them.</summary>
public sealed class ProtocolCounts
{
    public long Ethernet, Vlan, Arp, Ipv4, Ipv6, Tcp, Udp, Icmp, Vxlan, Fragment, Other;

    /// <summary>Counts <paramref name="n"/> packets of one kind. "other" is a frame carrying none of IPv4/IPv6 TCP/UDP/ICMP.</summary>
    public void Count(ProtocolFlags p, long n = 1)
    {
        if ((p & ProtocolFlags.Ethernet) != 0) Ethernet += n;
        if ((p & ProtocolFlags.Vlan) != 0) Vlan += n;
        if ((p & ProtocolFlags.Arp) != 0) Arp += n;
        if ((p & ProtocolFlags.Ipv4) != 0) Ipv4 += n;
        if ((p & ProtocolFlags.Ipv6) != 0) Ipv6 += n;
        if ((p & ProtocolFlags.Tcp) != 0) Tcp += n;
        if ((p & ProtocolFlags.Udp) != 0) Udp += n;
        if ((p & (ProtocolFlags.Icmp | ProtocolFlags.Icmpv6)) != 0) Icmp += n;
        if ((p & ProtocolFlags.Vxlan) != 0) Vxlan += n;
        if ((p & ProtocolFlags.Fragment) != 0) Fragment += n;
        if ((p & (ProtocolFlags.Tcp | ProtocolFlags.Udp | ProtocolFlags.Icmp | ProtocolFlags.Icmpv6)) == 0) Other += n;
    }

    public void AddFrom(ProtocolCounts o)
    {
        Ethernet += o.Ethernet; Vlan += o.Vlan; Arp += o.Arp; Ipv4 += o.Ipv4; Ipv6 += o.Ipv6; Tcp += o.Tcp;
        Udp += o.Udp; Icmp += o.Icmp; Vxlan += o.Vxlan; Fragment += o.Fragment; Other += o.Other;
    }

    public IEnumerable<(string Name, long Count)> Items()
    {
        yield return ("ethernet", Ethernet);
        yield return ("vlan", Vlan);
        yield return ("arp", Arp);
        yield return ("ipv4", Ipv4);
        yield return ("ipv6", Ipv6);
        yield return ("tcp", Tcp);
        yield return ("udp", Udp);
        yield return ("icmp", Icmp);
        yield return ("vxlan", Vxlan);
        yield return ("fragment", Fragment);
        yield return ("other", Other);
    }
}

/// <summary>A section that a later stage adds to the report (nic, softnet, gro, netfilter ...).</summary>
public interface IReportSection
{
    /// <summary>Top-level JSON key of the section.</summary>
    string Key { get; }

    /// <summary>Writes the section's value (an object or array).</summary>
    void WriteJson(Utf8JsonWriter writer);
}

/// <summary>
/// What a replay found. Conservation always holds: packets_in = delivered + sum(drops) + frames XDP sent
/// elsewhere (XDP_TX / XDP_REDIRECT, which leave the receive path without being dropped).
/// </summary>
public sealed class ReplayReport
{
    public string Source { get; set; } = "";
    public long PacketsIn { get; set; }
    public long BytesIn { get; set; }
    public long Delivered { get; set; }
    public long XdpTx { get; set; }

    /// <summary>Frames the capture had cut at its snap length; replayed zero-filled to their wire length.</summary>
    public long SnappedFrames { get; set; }
    public long XdpRedirect { get; set; }
    public ProtocolCounts Protocols { get; } = new();
    public DropCounters Drops { get; } = new();
    public TimeSpan Elapsed { get; set; }
    public long FirstTimestampNs { get; set; }
    public long LastTimestampNs { get; set; }

    /// <summary>Set when the capture could not be read to its end; packets before the damage are counted.</summary>
    public string? CaptureError { get; set; }

    public List<IReportSection> Sections { get; } = [];

    /// <summary>Segments beyond the first of each TCP aggregate (a 64 KB GRO/TSO frame from a capture) the driver
    /// turned into a GSO skb: from there on the path counts such a frame as its gso_segs segments.</summary>
    public long AggregateSegments { get; set; }

    public bool Conserved => PacketsIn + AggregateSegments == Delivered + Drops.Total + XdpTx + XdpRedirect;

    public void WriteJson(Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("source", Source);
        w.WriteNumber("packets_in", PacketsIn);
        w.WriteNumber("bytes_in", BytesIn);
        w.WriteNumber("delivered", Delivered);
        w.WriteBoolean("conserved", Conserved);
        if (AggregateSegments != 0) w.WriteNumber("aggregate_segments", AggregateSegments);
        w.WriteStartObject("protocols");
        foreach (var (name, count) in Protocols.Items()) w.WriteNumber(name, count);
        w.WriteEndObject();
        w.WriteStartObject("drops");
        foreach (var (reason, count) in Drops.NonZero()) w.WriteNumber(DropReasons.Name(reason), count);
        w.WriteEndObject();
        w.WriteNumber("drops_total", Drops.Total);
        if (SnappedFrames != 0) w.WriteNumber("snapped_frames", SnappedFrames);
        if (XdpTx != 0 || XdpRedirect != 0)
        {
            w.WriteNumber("xdp_tx", XdpTx);
            w.WriteNumber("xdp_redirect", XdpRedirect);
        }
        if (CaptureError is not null) w.WriteString("capture_error", CaptureError);
        w.WriteNumber("first_timestamp_ns", FirstTimestampNs);
        w.WriteNumber("last_timestamp_ns", LastTimestampNs);
        w.WriteNumber("elapsed_seconds", Elapsed.TotalSeconds);
        w.WriteNumber("packets_per_second", Elapsed.TotalSeconds > 0 ? PacketsIn / Elapsed.TotalSeconds : 0);
        foreach (var s in Sections)
        {
            w.WritePropertyName(s.Key);
            s.WriteJson(w);
        }
        w.WriteEndObject();
    }

    public void WriteJson(string path)
    {
        using var f = File.Create(path);
        WriteJson(f);
    }
}
