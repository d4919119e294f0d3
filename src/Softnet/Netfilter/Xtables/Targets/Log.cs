using System.Globalization;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of LOG (xt_LOG.c): non-terminating; hands a kernel-style log line to the table's sink.</summary>
public sealed class LogTarget : XtTarget
{
    public string? Prefix;
    public byte Level = 4;
    /// <summary>XT_LOG_* flags: TCPSEQ 1, TCPOPT 2, IPOPT 4, UID 8, MACDECODE 0x20.</summary>
    public byte Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        t.LogCount++;
        if (t.LogSink != null)
        {
            var sb = new StringBuilder();
            sb.Append(Prefix).Append("IN=").Append(p.InInterface).Append(" OUT=").Append(p.OutInterface);
            // nf_log_ip6_packet prints the IPv6 fields (traffic class, hop limit) where the IPv4 line has TOS and TTL.
            if (p.IsIpv6)
                sb.Append(" SRC=").Append(Ip6Addr.Format(p.Src6)).Append(" DST=").Append(Ip6Addr.Format(p.Dst6))
                  .Append(" LEN=").Append(p.Length).Append(" TC=").Append(p.Tos).Append(" HOPLIMIT=").Append(p.Ttl).Append(" PROTO=");
            else
                sb.Append(" SRC=").Append(Ipv4.Format(p.Src)).Append(" DST=").Append(Ipv4.Format(p.Dst))
                  .Append(" LEN=").Append(p.Length).Append(" PROTO=");
            if (p.Protocol == 6 || p.Protocol == 17)
                sb.Append(p.Protocol == 6 ? "TCP" : "UDP").Append(" SPT=").Append(p.SrcPort).Append(" DPT=").Append(p.DstPort);
            else if (p.Protocol == 1 && !p.IsIpv6) sb.Append("ICMP TYPE=").Append(p.IcmpType).Append(" CODE=").Append(p.IcmpCode);
            else if (p.Protocol == 58 && p.IsIpv6) sb.Append("ICMPv6 TYPE=").Append(p.IcmpType).Append(" CODE=").Append(p.IcmpCode);
            else sb.Append(p.Protocol);
            if (p.Mark != 0) sb.Append(" MARK=").Append(Opt.Hex(p.Mark));
            t.LogSink(Level, sb.ToString());
        }
        return TargetResult.Continue;
    }
}

/// <summary>Userspace half of LOG (libxt_LOG.c).</summary>
internal sealed class LogTargetExtension : XtTargetExtension<LogTarget>
{
    public override string Name => "LOG";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    private static readonly string[] Levels = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };

    internal override bool Parse(LogTarget t, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--log-prefix":
                t.Prefix = a.Next(option);
                if (t.Prefix.Length > 29) throw a.Error("Maximum prefix length 29 for --log-prefix");
                return true;
            case "--log-level":
                string v = a.Next(option);
                int i = Array.IndexOf(Levels, v);
                if (i >= 0) t.Level = (byte)i;
                else if (byte.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 7) t.Level = n;
                else throw a.Error($"log-level `{v}' unknown");
                return true;
            case "--log-tcp-sequence": t.Flags |= 0x01; return true;
            case "--log-tcp-options": t.Flags |= 0x02; return true;
            case "--log-ip-options": t.Flags |= 0x04; return true;
            case "--log-uid": t.Flags |= 0x08; return true;
            case "--log-macdecode": t.Flags |= 0x20; return true;
        }
        return false;
    }

    internal override void Save(LogTarget t, StringBuilder sb)
    {
        if (t.Prefix != null) { sb.Append(" --log-prefix"); IptablesSave.AppendQuoted(sb, t.Prefix); }
        if (t.Level != 4) sb.Append(" --log-level ").Append(t.Level);
        if ((t.Flags & 0x01) != 0) sb.Append(" --log-tcp-sequence");
        if ((t.Flags & 0x02) != 0) sb.Append(" --log-tcp-options");
        if ((t.Flags & 0x04) != 0) sb.Append(" --log-ip-options");
        if ((t.Flags & 0x08) != 0) sb.Append(" --log-uid");
        if ((t.Flags & 0x20) != 0) sb.Append(" --log-macdecode");
    }

    internal override void List(LogTarget t, StringBuilder sb)
    {
        sb.Append(" LOG flags ").Append(t.Flags).Append(" level ").Append(t.Level);
        if (t.Prefix != null) sb.Append(" prefix \"").Append(t.Prefix).Append('"');
    }
}
