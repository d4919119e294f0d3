using Softnet.Packets;

namespace Softnet.Link;

/// <summary>The loopback device (drivers/net/loopback.c): what it sends, it receives.</summary>
public sealed class LoopbackLink : LinkKind
{
    public override string Name => "loopback";
    public override int DefaultMtu => 65536;
    public override bool IsLoopback => true;

    /// <summary>loopback_xmit → netif_rx on the same device.</summary>
    public override DropReason Xmit(NetStack stack, Device dev, Skb skb)
    {
        stack.NetifRx(dev, skb);
        return DropReason.None;
    }
}
