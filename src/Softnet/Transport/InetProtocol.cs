using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;

namespace Softnet.Transport;

/// <summary>
/// A transport protocol's receive function for locally delivered IPv4 datagrams (struct net_protocol, registered by
/// inet_add_protocol): ip_local_deliver_finish hands the datagram, data at the transport header, to the handler of
/// its protocol number. Adding a protocol is adding a subclass.
/// </summary>
public abstract class InetProtocol
{
    /// <summary>The IP protocol number this handler takes.</summary>
    public abstract byte Protocol { get; }

    /// <summary>The handler owns <paramref name="skb"/> (data at the IP header; the transport header set) and frees,
    /// answers or queues it. <paramref name="dev"/> is the device it arrived on.</summary>
    public abstract void Receive(NetStack stack, Device dev, Skb skb, ref PacketContext ctx);

    /// <summary>A delivered datagram the transport drops (kfree_skb with a reason after ip_local_deliver_finish
    /// counted it delivered): the reason is counted, and the namespace's conservation sum knows it was delivered
    /// first.</summary>
    public static void DropDelivered(Namespace ns, Skb skb, DropReason reason)
    {
        ns.Counters.TransportDrops++;
        NetStack.Drop(ns, skb, reason);
    }

    private static InetProtocol?[]? _byProtocol;

    /// <summary>inet_protos[protocol]: the registered handler, or null.</summary>
    public static InetProtocol? Find(byte protocol)
    {
        var table = _byProtocol ??= Build();
        return table[protocol];
    }

    private static InetProtocol?[] Build()
    {
        var table = new InetProtocol?[256];
        foreach (var p in Registry.Instances<InetProtocol>())
        {
            if (table[p.Protocol] != null) throw new InvalidOperationException($"two handlers for IP protocol {p.Protocol}");
            table[p.Protocol] = p;
        }
        return table;
    }
}
