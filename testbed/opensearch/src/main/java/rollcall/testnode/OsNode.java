package rollcall.testnode;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * One embedded OpenSearch 2.19 node (the real server: transport, discovery, cluster-manager
 * election, Lucene and translog on disk, peer recovery), without the bin/opensearch
 * bootstrap wrapper, which refuses root and runs the production bootstrap checks.
 *
 * <p>Usage: OsNode NAME IP HOME SEEDS INITIAL_MANAGERS [HTTP_PORT [TRANSPORT_PORT]]
 *
 * <p>SEEDS: comma-separated transport addresses (ip or ip:port); INITIAL_MANAGERS: the node
 * names that form the cluster the first time. HOME keeps config, data and logs: starting
 * again with the same HOME is a reboot (same node id, same data). SIGTERM closes the node.
 *
 * <p>With -Drollcall.parent=PID the node also exits when that process is gone (tests share
 * one cluster per test binary and cannot stop it when the last test ends).
 */
public final class OsNode {
  static final class EmbeddedNode extends Node {
    EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
      super(env, plugins, true);
    }
  }

  private static final String LOG4J =
      String.join(
          "\n",
          "status = error",
          "appender.console.type = Console",
          "appender.console.name = console",
          "appender.console.layout.type = PatternLayout",
          "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%c{1.}] [%node_name] %m%n",
          "rootLogger.level = info",
          "rootLogger.appenderRef.console.ref = console",
          "");

  private static void watchParent() {
    String p = System.getProperty("rollcall.parent");
    if (p == null) {
      return;
    }
    long pid = Long.parseLong(p);
    Thread t =
        new Thread(
            () -> {
              while (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                try {
                  Thread.sleep(500);
                } catch (InterruptedException e) {
                  return;
                }
              }
              System.exit(0);
            },
            "rollcall-parent-watch");
    t.setDaemon(true);
    t.start();
  }

  public static void main(String[] a) throws Exception {
    if (a.length < 5 || a.length > 7) {
      System.err.println(
          "usage: OsNode NAME IP HOME SEEDS INITIAL_MANAGERS [HTTP_PORT [TRANSPORT_PORT]]");
      System.exit(2);
    }
    String name = a[0];
    String ip = a[1];
    Path home = Paths.get(a[2]).toAbsolutePath();
    int httpPort = a.length > 5 ? Integer.parseInt(a[5]) : 9200;
    int transportPort = a.length > 6 ? Integer.parseInt(a[6]) : 9300;
    for (String d : List.of("config", "data", "logs", "modules", "plugins")) {
      Files.createDirectories(home.resolve(d)); // an empty modules/ is mandatory
    }
    Files.write(home.resolve("config/log4j2.properties"), LOG4J.getBytes(StandardCharsets.UTF_8));
    Settings s =
        Settings.builder()
            .put("cluster.name", "rollcall-testbed")
            .put("node.name", name)
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", ip)
            .put("http.port", httpPort)
            .put("transport.port", transportPort)
            .putList("discovery.seed_hosts", a[3].split(","))
            .putList("cluster.initial_cluster_manager_nodes", a[4].split(","))
            .putList("node.roles", "cluster_manager", "data", "ingest")
            .put("node.processors", 1)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("discovery.initial_state_timeout", "5s")
            .put("action.auto_create_index", true)
            .build();
    Environment env =
        InternalSettingsPreparer.prepareEnvironment(s, Map.of(), home.resolve("config"), () -> name);
    LogConfigurator.registerErrorListener();
    LogConfigurator.setNodeName(name);
    LogConfigurator.configure(env);
    Node node = new EmbeddedNode(env, List.of(Netty4Plugin.class));
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  try {
                    node.close();
                    node.awaitClose(10, TimeUnit.SECONDS);
                  } catch (Exception e) {
                    System.err.println("closing the node: " + e);
                  }
                  stopped.countDown();
                }));
    watchParent();
    node.start();
    System.out.println("OsNode " + name + " started on " + ip + ":" + httpPort);
    stopped.await(); // the node's threads are daemons: keep the JVM alive
  }
}
