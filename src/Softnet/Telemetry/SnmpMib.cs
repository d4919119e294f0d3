using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Softnet.Telemetry;

/// <summary>
/// The SNMP and extended MIB counters Softnet models, named as nstat names them and declared in the order
/// `nstat -az` prints them (/proc/net/snmp, then /proc/net/snmp6, then /proc/net/netstat: Ip, Icmp, Tcp, Udp, Ip6,
/// Icmp6, Udp6, TcpExt, IpExt). A counter is added here when the path that counts it is modelled; the kernel's others
/// are left out of the dump rather than printed as zero.
/// </summary>
public enum SnmpCounter
{
    // Ip (ipstats_mib)
    IpInReceives,
    IpInHdrErrors,
    IpInAddrErrors,
    IpForwDatagrams,
    IpInUnknownProtos,
    IpInDiscards,
    IpInDelivers,
    IpOutRequests,
    IpOutDiscards,
    IpOutNoRoutes,
    IpReasmTimeout,
    IpReasmReqds,
    IpReasmOKs,
    IpReasmFails,
    IpFragOKs,
    IpFragFails,
    IpFragCreates,
    IpOutTransmits,
    // Icmp (icmp_mib, icmpmsg_mib)
    IcmpInMsgs,
    IcmpInErrors,
    IcmpInCsumErrors,
    IcmpInDestUnreachs,
    IcmpInTimeExcds,
    IcmpInParmProbs,
    IcmpInSrcQuenchs,
    IcmpInRedirects,
    IcmpInEchos,
    IcmpInEchoReps,
    IcmpInTimestamps,
    IcmpInTimestampReps,
    IcmpInAddrMasks,
    IcmpInAddrMaskReps,
    IcmpOutMsgs,
    IcmpOutErrors,
    IcmpOutRateLimitGlobal,
    IcmpOutRateLimitHost,
    IcmpOutDestUnreachs,
    IcmpOutTimeExcds,
    IcmpOutParmProbs,
    IcmpOutSrcQuenchs,
    IcmpOutRedirects,
    IcmpOutEchos,
    IcmpOutEchoReps,
    IcmpOutTimestamps,
    IcmpOutTimestampReps,
    IcmpOutAddrMasks,
    IcmpOutAddrMaskReps,
    // Tcp (tcp_mib)
    TcpActiveOpens,
    TcpPassiveOpens,
    TcpAttemptFails,
    TcpEstabResets,
    TcpInSegs,
    TcpOutSegs,
    TcpRetransSegs,
    TcpInErrs,
    TcpOutRsts,
    TcpInCsumErrors,
    // Udp (udp_mib)
    UdpInDatagrams,
    UdpNoPorts,
    UdpInErrors,
    UdpOutDatagrams,
    UdpRcvbufErrors,
    UdpSndbufErrors,
    UdpInCsumErrors,
    UdpIgnoredMulti,
    UdpMemErrors,
    // Ip6 (/proc/net/snmp6: ipstats_mib of IPv6)
    Ip6InReceives,
    Ip6InHdrErrors,
    Ip6InTooBigErrors,
    Ip6InNoRoutes,
    Ip6InAddrErrors,
    Ip6InUnknownProtos,
    Ip6InTruncatedPkts,
    Ip6InDiscards,
    Ip6InDelivers,
    Ip6OutForwDatagrams,
    Ip6OutRequests,
    Ip6OutDiscards,
    Ip6OutNoRoutes,
    Ip6ReasmTimeout,
    Ip6ReasmReqds,
    Ip6ReasmOKs,
    Ip6ReasmFails,
    Ip6FragOKs,
    Ip6FragFails,
    Ip6FragCreates,
    Ip6InMcastPkts,
    Ip6OutMcastPkts,
    Ip6InOctets,
    Ip6OutOctets,
    Ip6InMcastOctets,
    Ip6OutMcastOctets,
    Ip6InNoECTPkts,
    Ip6InECT1Pkts,
    Ip6InECT0Pkts,
    Ip6InCEPkts,
    Ip6OutTransmits,
    // Icmp6 (icmpv6_mib, icmpv6msg_mib)
    Icmp6InMsgs,
    Icmp6InErrors,
    Icmp6OutMsgs,
    Icmp6OutErrors,
    Icmp6InCsumErrors,
    Icmp6OutRateLimitHost,
    Icmp6InDestUnreachs,
    Icmp6InPktTooBigs,
    Icmp6InTimeExcds,
    Icmp6InParmProblems,
    Icmp6InEchos,
    Icmp6InEchoReplies,
    Icmp6InGroupMembQueries,
    Icmp6InGroupMembResponses,
    Icmp6InGroupMembReductions,
    Icmp6InRouterSolicits,
    Icmp6InRouterAdvertisements,
    Icmp6InNeighborSolicits,
    Icmp6InNeighborAdvertisements,
    Icmp6InRedirects,
    Icmp6InMLDv2Reports,
    Icmp6OutDestUnreachs,
    Icmp6OutPktTooBigs,
    Icmp6OutTimeExcds,
    Icmp6OutParmProblems,
    Icmp6OutEchos,
    Icmp6OutEchoReplies,
    Icmp6OutGroupMembQueries,
    Icmp6OutGroupMembResponses,
    Icmp6OutGroupMembReductions,
    Icmp6OutRouterSolicits,
    Icmp6OutRouterAdvertisements,
    Icmp6OutNeighborSolicits,
    Icmp6OutNeighborAdvertisements,
    Icmp6OutRedirects,
    Icmp6OutMLDv2Reports,
    // Udp6 (udp_stats_in6)
    Udp6InDatagrams,
    Udp6NoPorts,
    Udp6InErrors,
    Udp6OutDatagrams,
    Udp6RcvbufErrors,
    Udp6SndbufErrors,
    Udp6InCsumErrors,
    Udp6IgnoredMulti,
    Udp6MemErrors,
    // TcpExt (linux_mib)
    TcpExtSyncookiesSent,
    TcpExtSyncookiesRecv,
    TcpExtSyncookiesFailed,
    TcpExtEmbryonicRsts,
    TcpExtOutOfWindowIcmps,
    TcpExtTW,
    TcpExtPAWSEstab,
    TcpExtDelayedACKs,
    TcpExtDelayedACKLost,
    TcpExtListenOverflows,
    TcpExtListenDrops,
    TcpExtTCPHPHits,
    TcpExtTCPPureAcks,
    TcpExtTCPTimeouts,
    TcpExtTCPLossProbes,
    TcpExtTCPBacklogCoalesce,
    TcpExtTCPDSACKOldSent,
    TcpExtTCPDSACKOfoSent,
    TcpExtTCPAbortOnData,
    TcpExtTCPAbortOnClose,
    TcpExtTCPAbortOnTimeout,
    TcpExtTCPBacklogDrop,
    TcpExtTCPReqQFullDoCookies,
    TcpExtTCPReqQFullDrop,
    TcpExtTCPRcvCoalesce,
    TcpExtTCPOFOQueue,
    TcpExtTCPOFODrop,
    TcpExtTCPOFOMerge,
    TcpExtTCPChallengeACK,
    TcpExtTCPSYNChallenge,
    TcpExtTCPFastOpenPassive,
    TcpExtTCPFastOpenPassiveFail,
    TcpExtTCPFastOpenListenOverflow,
    TcpExtTCPFastOpenCookieReqd,
    TcpExtTCPFromZeroWindowAdv,
    TcpExtTCPToZeroWindowAdv,
    TcpExtTCPWantZeroWindowAdv,
    TcpExtTCPSynRetrans,
    TcpExtTCPACKSkippedSynRecv,
    TcpExtTCPACKSkippedSeq,
    TcpExtTCPACKSkippedChallenge,
    TcpExtTCPZeroWindowDrop,
    TcpExtTCPRcvQDrop,
    TcpExtTCPFastOpenPassiveAltKey,
    // IpExt (ipstats_mib, the extended half)
    IpExtInNoRoutes,
    IpExtInTruncatedPkts,
    IpExtInBcastPkts,
    IpExtOutBcastPkts,
    IpExtInOctets,
    IpExtOutOctets,
    IpExtInCsumErrors,
    IpExtReasmOverlaps,
}

/// <summary>One namespace's SNMP MIB (net->mib): <c>mib[SnmpCounter.UdpNoPorts]++</c>.</summary>
public sealed class SnmpMib
{
    private static readonly SnmpCounter[] All = Enum.GetValues<SnmpCounter>();
    private readonly long[] _values = new long[All.Length];

    public ref long this[SnmpCounter c] => ref _values[(int)c];

    /// <summary>Adds <paramref name="n"/> (SNMP_ADD_STATS).</summary>
    public void Add(SnmpCounter c, long n) => _values[(int)c] += n;

    /// <summary>The counters that are not zero, in nstat's order (`nstat -a` without -z).</summary>
    public IEnumerable<(string Name, long Value)> NonZero()
    {
        foreach (var c in All)
            if (_values[(int)c] != 0) yield return (c.ToString(), _values[(int)c]);
    }

    /// <summary>Every modelled counter with its value, in nstat's order.</summary>
    public IEnumerable<(string Name, long Value)> Values()
    {
        foreach (var c in All) yield return (c.ToString(), _values[(int)c]);
    }

    /// <summary>`nstat -az` output for the modelled counters: "#kernel", then "%-32s%-16llu%6.1f" per counter (the
    /// rate column is 0.0: a dump is one absolute sample).</summary>
    public string NstatText()
    {
        var sb = new StringBuilder("#kernel\n");
        foreach (var (name, value) in Values())
            sb.Append(name.PadRight(32)).Append(value.ToString(CultureInfo.InvariantCulture).PadRight(16)).Append("   0.0\n");
        return sb.ToString();
    }

    /// <summary>Parses `nstat -az` text (ours or the kernel's) into name → value; the "#kernel" line and blank lines
    /// are skipped.</summary>
    public static Dictionary<string, long> ParseNstat(string text)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var t = raw.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (t.Length < 2 || t[0].StartsWith('#')) continue;
            if (long.TryParse(t[1], NumberStyles.None, CultureInfo.InvariantCulture, out long v)) d[t[0]] = v;
        }
        return d;
    }
}

/// <summary>The "snmp" section of the JSON report: per namespace its non-zero SNMP counters, by nstat name.</summary>
public sealed class SnmpReportSection(IReadOnlyList<(string Name, SnmpMib Mib)> namespaces) : IReportSection
{
    public string Key => "snmp";

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        foreach (var (name, mib) in namespaces)
        {
            w.WriteStartObject(name);
            foreach (var (counter, value) in mib.NonZero()) w.WriteNumber(counter, value);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
