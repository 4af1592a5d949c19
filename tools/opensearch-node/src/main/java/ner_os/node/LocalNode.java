package ner_os.node;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

/**
 * A single-node OpenSearch cluster in this JVM, with modules and plugins loaded from the classpath.
 *
 * <pre>java -Xms1g -Xmx1g -cp ... ner_os.node.LocalNode HOME HTTP_PORT PORT_FILE</pre>
 *
 * HOME holds data/ and logs/; HTTP_PORT 0 lets the OS pick a free port. Once the node is up, the
 * bound HTTP port is written to PORT_FILE (atomically), which is how the caller learns it.
 * SIGTERM closes the node cleanly.
 *
 * <p>{@code -Dner_os.node.settings=FILE} lays the settings in FILE over the single-node defaults
 * (ML Commons thresholds, the security plugin's TLS files, a multi-node cluster's discovery); its
 * list {@code ner_os.unset} names defaults to drop. Optional plugins (job-scheduler, ML Commons,
 * security) load when their classes are on the classpath.
 */
public final class LocalNode {

    /** Marks the line that says why the node failed to start. */
    static final String FAILURE_PREFIX = "ner-os local node failed to start: ";

    /** Modules and plugins, in load order; a class missing from the classpath is skipped. */
    private static final List<String> PLUGIN_CLASSES = List.of(
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.script.mustache.MustachePlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.knn.plugin.KNNPlugin",
        // optional sets: on the classpath only when local_node.py builds them in (ml_commons=, secure=)
        "org.opensearch.jobscheduler.JobSchedulerPlugin",
        "org.opensearch.ml.plugin.MachineLearningPlugin",
        "org.opensearch.security.OpenSearchSecurityPlugin",
        "org.opensearch.neuralsearch.plugin.NeuralSearch"
    );

    /** System property naming a settings file (YAML or JSON) laid over the defaults below. */
    static final String SETTINGS_PROPERTY = "ner_os.node.settings";

    /** A list in that file: default settings to drop (e.g. discovery.type for a multi-node cluster). */
    static final String UNSET_KEY = "ner_os.unset";

    /** Node's classpath-plugin constructor is protected: this subclass exposes it. */
    private static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(Environment environment, List<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: LocalNode HOME HTTP_PORT PORT_FILE");
            System.exit(64);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String httpPort = args[1];
        Path portFile = Path.of(args[2]).toAbsolutePath();

        Settings.Builder builder = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "ner-os-local")
            .put("node.name", "ner-os-local")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", "0")
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        String overlayFile = System.getProperty(SETTINGS_PROPERTY);
        if (overlayFile != null && !overlayFile.isEmpty()) {
            Settings overlay = Settings.builder().loadFromPath(Path.of(overlayFile)).build();
            for (String key : overlay.getAsList(UNSET_KEY)) {
                builder.remove(key);
            }
            builder.put(overlay.filter(key -> !key.equals(UNSET_KEY)));
        }
        Settings settings = builder.build();
        String nodeName = settings.get("node.name");
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), null, () -> nodeName);

        Node node = new ClasspathPluginNode(environment, loadablePlugins());
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "ner-os-node-shutdown"));

        try {
            node.start();
        } catch (Throwable failure) {
            // one readable line last in the log: local_node.py shows it instead of a stack trace
            failure.printStackTrace(System.out);
            System.out.println(FAILURE_PREFIX + describe(failure));
            System.out.flush();
            System.exit(1);
        }
        int boundPort = node.injector().getInstance(HttpServerTransport.class)
            .boundAddress().publishAddress().getPort();
        writeAtomically(portFile, Integer.toString(boundPort));
        System.out.println("ner-os local node listening on http://127.0.0.1:" + boundPort);
        closed.await();
    }

    /** The root cause's class and message, e.g. "BindException: Address already in use". */
    private static String describe(Throwable failure) {
        StringBuilder reasons = new StringBuilder();
        for (Throwable cause = failure; cause != null; cause = cause.getCause() == cause ? null : cause.getCause()) {
            if (reasons.length() > 0) {
                reasons.append(" <- ");
            }
            reasons.append(cause.getClass().getSimpleName()).append(": ").append(cause.getMessage());
        }
        return reasons.toString();
    }

    @SuppressWarnings("unchecked")
    private static List<Class<? extends Plugin>> loadablePlugins() {
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGIN_CLASSES) {
            try {
                plugins.add((Class<? extends Plugin>) Class.forName(name));
            } catch (ClassNotFoundException notOnClasspath) {
                System.out.println("plugin not on the classpath, skipped: " + name);
            }
        }
        return plugins;
    }

    private static void writeAtomically(Path target, String content) throws Exception {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.writeString(tmp, content, StandardCharsets.UTF_8);
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
