using Softnet.Packets;

namespace Softnet.Link;

/// <summary>What an rx_handler decided (rx_handler_result_t).</summary>
public enum RxHandlerResult : byte
{
    /// <summary>RX_HANDLER_CONSUMED: the master took the frame.</summary>
    Consumed,
    /// <summary>RX_HANDLER_PASS: deliver normally on the port itself.</summary>
    Pass,
}

/// <summary>
/// A kind of net device (rtnl_link_ops with its net_device_ops): how it transmits, whether it has carrier, and,
/// for a master device, the rx_handler its ports run (br_handle_frame). Kinds register themselves by name: every
/// non-abstract subclass in the assembly is found once, so a new kind (vxlan, a live port) is a new file.
/// </summary>
public abstract class LinkKind
{
    /// <summary>The name `ip link add ... type NAME` uses.</summary>
    public abstract string Name { get; }
    public virtual int DefaultMtu => 1500;
    public virtual bool IsLoopback => false;
    /// <summary>Can other devices be enslaved to this one (`master`).</summary>
    public virtual bool IsBridge => false;

    /// <summary>netif_carrier_ok for a device that is up.</summary>
    public virtual bool HasCarrier(Device dev) => true;

    /// <summary>ndo_start_xmit: the frame (data at the MAC header) leaves <paramref name="dev"/>. The skb is the
    /// kind's to free or pass on. Returns why it was dropped, or <see cref="DropReason.None"/>.</summary>
    public abstract DropReason Xmit(NetStack stack, Device dev, Skb skb);

    /// <summary>The rx_handler a master installs on its ports; called for frames a port receives, after
    /// eth_type_trans (data at the network header).</summary>
    public virtual RxHandlerResult PortReceive(NetStack stack, Device master, Device port, Skb skb) => RxHandlerResult.Pass;

    public override string ToString() => Name;

    private static Dictionary<string, LinkKind>? _kinds;

    /// <summary>The registered kind called <paramref name="name"/>, or null.</summary>
    public static LinkKind? Find(string name)
    {
        _kinds ??= Registry.Instances<LinkKind>().ToDictionary(k => k.Name, StringComparer.Ordinal);
        return _kinds.GetValueOrDefault(name);
    }

    public static LinkKind Get(string name) => Find(name) ?? throw new ArgumentException($"unknown link kind '{name}'");

    public static IEnumerable<string> Names
    {
        get
        {
            Find("");
            return _kinds!.Keys;
        }
    }
}

/// <summary>Finds every concrete subclass of a registration base in this assembly, once (never per packet):
/// devices by kind, protocol handlers by EtherType, as the kernel's register_netdevice / dev_add_pack.</summary>
internal static class Registry
{
    public static List<T> Instances<T>() where T : class
        => typeof(T).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(T).IsAssignableFrom(t) && t.GetConstructor(Type.EmptyTypes) != null)
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .Select(t => (T)Activator.CreateInstance(t)!)
            .ToList();
}
